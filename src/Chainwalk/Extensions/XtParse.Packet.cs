using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions;

/// <summary>Parsers shared by the packet-header matches: xtoptions' port and integer ranges, ICMP types.</summary>
public static partial class XtParse
{
    private static readonly string[] ServiceProtocols = ["tcp", "udp", "dccp", "udplite", "sctp"];

    /// <summary>
    /// The port lookup of xtoptions (getaddrinfo with a service only): optional blanks and '+', decimal
    /// digits truncated to 16 bits, or a service name of any transport protocol; -1 when nothing resolves.
    /// </summary>
    public static int ServicePort(string text, NameDb names)
    {
        int i = 0;
        while (i < text.Length && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r'))) i++;
        if (i < text.Length && text[i] == '+') i++;
        int start = i;
        ulong acc = 0;
        while (i < text.Length && text[i] >= '0' && text[i] <= '9')
        {
            acc = unchecked(acc * 10 + (ulong)(text[i] - '0'));
            i++;
        }
        if (i > start && i == text.Length) return (int)(acc & 0xFFFF);
        foreach (string proto in ServiceProtocols)
        {
            if (names.TryGetServicePort(text, proto, out int p)) return p;
        }
        return -1;
    }

    /// <summary>XTTYPE_PORTRC: "a", "a:b", with empty parts meaning 0 and 65535; no order check.</summary>
    public static (ushort Min, ushort Max) PortRangeOption(string text, string ext, string option, NameDb names)
    {
        ushort[] v = [0, ushort.MaxValue];
        int n = 0;
        foreach (string part in text.Split(':'))
        {
            if (n == 2) throw XtablesException.Param($"{ext}: Too many components for option \"--{option}\" (max: 2)\n");
            if (part.Length > 0)
            {
                int p = ServicePort(part, names);
                if (p < 0) throw XtablesException.Param($"Port \"{part}\" does not resolve to anything.\n");
                v[n] = (ushort)p;
            }
            n++;
        }
        if (n == 1) v[1] = v[0];
        return (v[0], v[1]);
    }

    /// <summary>
    /// XTTYPE_UINT*RC (xtopt_parse_mint): up to <paramref name="maxParts"/> numbers separated by ':'; an empty
    /// part is 0 for the first and <paramref name="max"/> for the second. Returns the values and their count.
    /// </summary>
    public static (ulong First, ulong Second, int Count) UIntRange(string text, ulong max, string ext, string option, int maxParts = 2)
    {
        ulong first = 0, second = 0;
        int n = 0;
        int pos = 0;
        while (true)
        {
            if (n == maxParts)
                throw XtablesException.Param($"{ext}: Too many components for option \"--{option}\" (max: {maxParts})\n");
            ulong value;
            int end;
            if (pos >= text.Length || text[pos] == ':')
            {
                end = pos;
                value = n == 1 ? max : 0;
            }
            else
            {
                ReadOnlySpan<char> rest = text.AsSpan(pos);
                int used = NumberParsing.ParseCPrefix(rest, 0, out value, out bool overflow);
                int k = 0;
                while (k < rest.Length && char.IsWhiteSpace(rest[k])) k++;
                if (used == 0 || (k < rest.Length && rest[k] == '-') || overflow || value > max)
                    throw XtablesException.Param($"{ext}: bad value for option \"--{option}\" near \"{text[pos..]}\", or out of range (0-{max}).\n");
                end = pos + used;
                if (end < text.Length && text[end] != ':')
                    throw XtablesException.Param($"{ext}: Argument to \"--{option}\" has unexpected characters near \"{text[end..]}\".\n");
            }
            if (n == 0) first = value;
            else if (n == 1) second = value;
            n++;
            if (end >= text.Length) break;
            pos = end + 1;
        }
        return (first, second, n);
    }

    /// <summary>XTTYPE_UINT8/16/32 (xtopt_parse_int): one number in [min, max].</summary>
    public static ulong UIntOption(string text, ulong min, ulong max, string ext, string option)
    {
        if (text.TrimStart().StartsWith('-') || !NumberParsing.TryParseCUnsigned(text, max, out ulong v, min))
            throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range ({min}-{max}).\n");
        return v;
    }

    /// <summary>xtables_strtoui(s, &amp;end, …, 0, max): a C number prefix; returns the characters used, 0 on failure.</summary>
    internal static int UIntPrefix(ReadOnlySpan<char> text, ulong max, out ulong value)
    {
        int k = 0;
        while (k < text.Length && char.IsWhiteSpace(text[k])) k++;
        if (k < text.Length && text[k] == '-')
        {
            value = 0;
            return 0;
        }
        int used = NumberParsing.ParseCPrefix(text, 0, out value, out bool overflow);
        if (used == 0 || overflow || value > max) return 0;
        return used;
    }

    /// <summary>An ICMP or ICMPv6 name table entry (libxt_icmp.h).</summary>
    public readonly record struct IcmpName(string Name, byte Type, byte CodeMin, byte CodeMax);

    /// <summary>
    /// __ipt_parse_icmp: a (case-insensitive, prefix) name from <paramref name="codes"/>, or "type[/code]"
    /// with numbers 0-255. <paramref name="kind"/> is "ICMP" or "ICMPv6" for messages.
    /// </summary>
    public static (byte Type, byte CodeMin, byte CodeMax) IcmpType(string text, IReadOnlyList<IcmpName> codes, string kind)
    {
        int match = -1;
        for (int i = 0; i < codes.Count; i++)
        {
            string name = codes[i].Name;
            if (name.Length < text.Length || !name.AsSpan(0, text.Length).Equals(text, StringComparison.OrdinalIgnoreCase)) continue;
            if (match >= 0)
                throw XtablesException.Param($"Ambiguous {kind} type `{text}': `{codes[match].Name}' or `{name}'?");
            match = i;
        }
        if (match >= 0) return (codes[match].Type, codes[match].CodeMin, codes[match].CodeMax);

        int pos = IcmpRange(text, 0, out ulong t0, out ulong t1);
        if (pos < 0) throw XtablesException.Param($"Unknown {kind} type `{text}'");
        byte cmin = 0, cmax = 255;
        if (pos < text.Length)
        {
            if (text[pos] != '/') throw XtablesException.Param($"unknown character {text[pos]}");
            int next = IcmpRange(text, pos + 1, out ulong c0, out ulong c1);
            if (next < 0) throw XtablesException.Param($"Unknown {kind} code `{text}'");
            if (next < text.Length) throw XtablesException.Param($"unknown character {text[next]}");
            cmin = (byte)c0;
            cmax = (byte)c1;
        }
        if (t0 != t1) throw XtablesException.Param($"{kind} type range not supported");
        return ((byte)t0, cmin, cmax);
    }

    private static int IcmpRange(string text, int pos, out ulong a, out ulong b)
    {
        b = 0;
        int used = UIntPrefix(text.AsSpan(pos), 255, out a);
        if (used == 0) return -1;
        pos += used;
        b = a;
        if (pos < text.Length && text[pos] == ':')
        {
            used = UIntPrefix(text.AsSpan(pos + 1), 255, out b);
            if (used == 0) return -1;
            pos += 1 + used;
        }
        return pos;
    }

    /// <summary>print_icmptype of libipt_icmp/libip6t_icmp6: a name when one fits (not numeric), else "type N [code C]".</summary>
    public static void AppendIcmpType(StringBuilder sb, IReadOnlyList<IcmpName> codes, byte type, byte cmin, byte cmax, bool invert, bool numeric)
    {
        if (!numeric)
        {
            foreach (IcmpName c in codes)
            {
                if (c.Type == type && c.CodeMin == cmin && c.CodeMax == cmax)
                {
                    sb.Append(' ').Append(invert ? "!" : string.Empty).Append(c.Name);
                    return;
                }
            }
        }
        if (invert) sb.Append(" !");
        sb.Append("type ").Append(type.ToString(CultureInfo.InvariantCulture));
        if (cmin == cmax) sb.Append(" code ").Append(cmin.ToString(CultureInfo.InvariantCulture));
        else if (cmin != 0 || cmax != 0xFF)
            sb.Append(" codes ").Append(cmin.ToString(CultureInfo.InvariantCulture)).Append('-').Append(cmax.ToString(CultureInfo.InvariantCulture));
    }
}

/// <summary>What iptables-nft 1.8.9 does to tcp/udp port matches it turns into native nf_tables expressions.</summary>
public static partial class XtParse
{
    /// <summary>
    /// The port range as it reads back from nf_tables: "! 0:65535" vanishes, "! 0:N" (N &lt; 65535) comes
    /// back as "N+1:65535" (a "greater than" compare).
    /// </summary>
    public static void NftPortRoundTrip(ref ushort min, ref ushort max, ref bool invert)
    {
        if (!invert || min != 0 || min == max) return;
        if (max == ushort.MaxValue)
        {
            invert = false;
            return;
        }
        min = (ushort)(max + 1);
        max = ushort.MaxValue;
        invert = false;
    }

    /// <summary>print_ports of libxt_tcp/libxt_udp: " spt:N", " spts:A:B", "!" after the colon.</summary>
    public static void AppendPortsListed(StringBuilder sb, string label, ushort min, ushort max, bool invert, bool numeric, string proto)
    {
        if (min == 0 && max == ushort.MaxValue && !invert) return;
        sb.Append(' ').Append(label);
        string inv = invert ? "!" : string.Empty;
        if (min == max)
        {
            sb.Append(':').Append(inv).Append(ServiceText(min, numeric, proto));
        }
        else
        {
            sb.Append("s:").Append(inv).Append(ServiceText(min, numeric, proto)).Append(':').Append(ServiceText(max, numeric, proto));
        }
    }

    /// <summary>A port as -L prints it: the service name for <paramref name="proto"/> unless numeric.</summary>
    public static string ServiceText(ushort port, bool numeric, string? proto) =>
        numeric || proto is null ? Dec(port) : NameDb.Printing.ServiceName(port, proto) ?? Dec(port);

    /// <summary>The save form of a tcp/udp port option: nothing for 0:65535 (even inverted).</summary>
    public static void AppendPortsSaved(StringBuilder sb, string option, ushort min, ushort max, bool invert)
    {
        if (min == 0 && max == ushort.MaxValue) return;
        if (invert) sb.Append(" !");
        sb.Append(" --").Append(option).Append(' ').Append(Dec(min));
        if (min != max) sb.Append(':').Append(Dec(max));
    }
}
