using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// Argument parsers the target extensions of this group share: the C library's address parsers
/// (inet_pton, getaddrinfo), xtables_strtoui with an end position, service names without a protocol,
/// and the xtoptions types HOST, HOSTMASK, PLENMASK and PORT.
/// </summary>
internal static class TargetParsing
{
    /// <summary>
    /// xtables_strtoul_base(s, &amp;end, …, base 0): false when no digits, a leading '-', overflow or out of
    /// range; <paramref name="end"/> is the index after the digits whenever digits were read.
    /// </summary>
    public static bool StrToUi(string s, ulong min, ulong max, out ulong value, out int end)
    {
        value = 0;
        end = 0;
        int p = 0;
        while (p < s.Length && IsCSpace(s[p])) p++;
        if (p < s.Length && s[p] == '-') return false;
        int used = NumberParsing.ParseCPrefix(s, 0, out ulong v, out bool overflow);
        if (used == 0) return false;
        end = used;
        if (overflow || v < min || v > max) return false;
        value = v;
        return true;
    }

    /// <summary>xtables_strtoui(s, NULL, …): the whole string is a number in range.</summary>
    public static bool StrToUiWhole(string s, ulong min, ulong max, out ulong value) =>
        StrToUi(s, min, max, out value, out int end) && end == s.Length;

    public static bool IsCSpace(char c) => c == ' ' || (c >= '\t' && c <= '\r');

    /// <summary>getservbyname(name, NULL): the first protocol that knows the name; -1 when none.</summary>
    public static int ServiceToPort(string name, NameDb names)
    {
        foreach (string proto in (ReadOnlySpan<string>)["tcp", "udp", "sctp", "dccp"])
        {
            if (names.TryGetServicePort(name, proto, out int port)) return port;
        }
        return -1;
    }

    /// <summary>inet_pton: a strict dotted quad (no leading zeros) or an IPv6 address.</summary>
    public static bool TryInetPton(string text, IpFamily family, out UInt128 value)
    {
        value = UInt128.Zero;
        return family == IpFamily.V4 ? TryPton4(text, out value) : TryPton6(text, out value);
    }

    private static bool TryPton4(ReadOnlySpan<char> text, out UInt128 value)
    {
        value = UInt128.Zero;
        uint acc = 0, part = 0;
        int octets = 0;
        bool sawDigit = false;
        foreach (char ch in text)
        {
            if (ch >= '0' && ch <= '9')
            {
                if (sawDigit && part == 0) return false;
                part = (part * 10) + (uint)(ch - '0');
                if (part > 255) return false;
                if (!sawDigit)
                {
                    if (++octets > 4) return false;
                    sawDigit = true;
                }
            }
            else if (ch == '.' && sawDigit)
            {
                if (octets == 4) return false;
                acc = (acc << 8) | part;
                part = 0;
                sawDigit = false;
            }
            else
            {
                return false;
            }
        }
        if (octets < 4 || !sawDigit) return false;
        value = (acc << 8) | part;
        return true;
    }

    private static bool TryPton6(string text, out UInt128 value)
    {
        value = UInt128.Zero;
        if (text.Length == 0 || !text.Contains(':', StringComparison.Ordinal)) return false;
        foreach (char c in text)
        {
            if (!(Uri.IsHexDigit(c) || c == ':' || c == '.')) return false;
        }
        int dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot >= 0)
        {
            int lastColon = text.LastIndexOf(':');
            if (lastColon > dot || !TryPton4(text.AsSpan(lastColon + 1), out _)) return false;
        }
        if (!IPAddress.TryParse(text, out IPAddress? ip) || ip.AddressFamily != AddressFamily.InterNetworkV6) return false;
        value = IpNet.FromIPAddress(ip);
        return true;
    }

    /// <summary>inet_aton as getaddrinfo uses it (the exact form): 1-4 parts in C notation, the last filling the rest.</summary>
    public static bool TryInetAton(string text, out uint value)
    {
        value = 0;
        if (text.Length == 0) return false;
        string[] parts = text.Split('.');
        if (parts.Length > 4) return false;
        var nums = new ulong[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            string p = parts[i];
            if (p.Length == 0 || !char.IsAsciiDigit(p[0])) return false;
            int used = NumberParsing.ParseCPrefix(p, 0, out ulong v, out bool overflow);
            if (used != p.Length || overflow) return false;
            nums[i] = v;
        }
        ulong result = 0;
        for (int i = 0; i < nums.Length - 1; i++)
        {
            if (nums[i] > 255) return false;
            result |= nums[i] << (8 * (3 - i));
        }
        int restBits = 8 * (4 - (nums.Length - 1));
        ulong last = nums[^1];
        if (restBits < 64 && last >= (1UL << restBits)) return false;
        value = (uint)(result | last);
        return true;
    }

    /// <summary>
    /// XTTYPE_HOST (xtopt_parse_host): getaddrinfo for the rule's family; one address, or the
    /// getaddrinfo error text iptables prints.
    /// </summary>
    public static UInt128 Host(string arg, IpFamily family, NameDb names)
    {
        if (family == IpFamily.V4)
        {
            if (TryInetAton(arg, out uint v4)) return v4;
            if (TryPton6(arg, out _)) throw XtablesException.Param("getaddrinfo: Address family for hostname not supported\n");
        }
        else
        {
            if (TryPton6(arg, out UInt128 v6)) return v6;
            if (TryInetAton(arg, out _)) throw XtablesException.Param("getaddrinfo: Address family for hostname not supported\n");
        }
        if (family == IpFamily.V6 && TryScopedPton6(arg, out UInt128 scoped)) return scoped;
        if (LooksNumeric(arg, family)) throw XtablesException.Param("getaddrinfo: Name or service not known\n");
        IReadOnlyList<UInt128> hosts = arg.Length == 0 ? [] : names.HostAddresses(arg, family);
        if (hosts.Count > 1) throw XtablesException.Param($"{arg} resolves to more than one address\n");
        if (hosts.Count == 1) return hosts[0];
        bool validName = arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_');
        throw XtablesException.Param(validName
            ? "getaddrinfo: Temporary failure in name resolution\n"
            : "getaddrinfo: Name or service not known\n");
    }

    /// <summary>
    /// An IPv6 address with a zone ("fe80::1%lo", "fe80::1%2"): the zone is dropped. Names are only
    /// taken for link-local addresses (and only "lo" exists in a fresh namespace); numbers always.
    /// </summary>
    private static bool TryScopedPton6(string arg, out UInt128 value)
    {
        value = UInt128.Zero;
        int pct = arg.IndexOf('%', StringComparison.Ordinal);
        if (pct <= 0 || !TryPton6(arg[..pct], out UInt128 addr)) return false;
        string zone = arg[(pct + 1)..];
        bool linkLocal = (addr >> 118) == 0x3FA || (addr >> 112) == 0xFF02;
        bool ok = (zone.Length > 0 && zone.All(char.IsAsciiDigit) && uint.TryParse(zone, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            || (linkLocal && zone == "lo");
        value = addr;
        return ok;
    }

    /// <summary>
    /// What the C library refuses without asking DNS (nss digits_dots): for IPv4 a name of digits and
    /// dots not ending in '.'; for IPv6 one that starts like an IPv6 address and has a ':'.
    /// </summary>
    private static bool LooksNumeric(string arg, IpFamily family)
    {
        if (arg.Length == 0) return false;
        if (family == IpFamily.V4) return char.IsAsciiDigit(arg[0]) && arg[^1] != '.' && arg.All(c => char.IsAsciiDigit(c) || c == '.');
        return (Uri.IsHexDigit(arg[0]) && arg.Contains(':', StringComparison.Ordinal)) || arg[0] == ':';
    }

    /// <summary>
    /// XTTYPE_PLEN / PLENMASK: a prefix length 0..32/128, or a mask in address form; returns the length
    /// (uint.MaxValue for a mask with holes, as xtables_ipmask_to_cidr's -1) and the mask it makes.
    /// </summary>
    public static (uint Length, UInt128 Mask) PlenMask(string arg, IpFamily family, string ext, string option)
    {
        uint max = family == IpFamily.V4 ? 32u : 128u;
        uint hlen;
        if (StrToUiWhole(arg, 0, max, out ulong n))
        {
            hlen = (uint)n;
        }
        else if (TryNumericHost(arg, family, out UInt128 m))
        {
            int cidr = IpNet.MaskToCidr(m, family);
            hlen = cidr < 0 ? uint.MaxValue : (uint)cidr;
        }
        else
        {
            throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", neither a valid network mask nor valid CIDR (0-{max}).\n");
        }
        UInt128 full = IpNet.FullMask(family);
        UInt128 mask;
        // A mask with holes leaves the length at -1: the mask stays all ones.
        if (hlen > max) mask = full;
        else mask = IpNet.PrefixMask(family, (int)hlen);
        return (hlen, mask);
    }

    /// <summary>getaddrinfo with AI_NUMERICHOST: inet_aton for IPv4, inet_pton for IPv6.</summary>
    public static bool TryNumericHost(string arg, IpFamily family, out UInt128 value)
    {
        if (family == IpFamily.V6) return TryPton6(arg, out value);
        bool ok = TryInetAton(arg, out uint v4);
        value = v4;
        return ok;
    }

    /// <summary>XTTYPE_UINT8/16/32 (xtopt_parse_int of 1.8.9): the whole argument, in min..max, else its one message.</summary>
    public static void IntOptionRange(string text, ulong min, ulong max, string ext, string option, out ulong value)
    {
        if (!StrToUiWhole(text, min, max, out value))
            throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range ({min}-{max}).\n");
    }

    /// <summary>
    /// xtables_options_fcheck: in table order, a mandatory option missing; then for each given option,
    /// against every other option id in ascending order, "also requires" and "cannot be used together".
    /// <paramref name="rules"/> lists (id, name, mandatory, excl mask, also mask) in table order.
    /// </summary>
    public static void OptionsFcheck(string ext, ulong given, ReadOnlySpan<(int Id, string Name, bool Mand, ulong Excl, ulong Also)> rules)
    {
        foreach (var e in rules)
        {
            ulong ef = 1UL << e.Id;
            if (e.Mand && (given & ef) == 0) throw XtablesException.Param($"{ext}: option \"--{e.Name}\" must be specified\n");
            if ((given & ef) == 0) continue;
            for (int i = 0; i < 32; i++)
            {
                if (i == e.Id) continue;
                int idx = -1;
                for (int k = 0; k < rules.Length; k++)
                {
                    if (rules[k].Id == i) { idx = k; break; }
                }
                if (idx < 0) continue;
                var other = rules[idx];
                ulong of = 1UL << other.Id;
                if ((e.Also & of) != 0 && (given & of) == 0)
                    throw XtablesException.Param($"{ext}: option \"--{e.Name}\" also requires \"--{other.Name}\".\n");
                if ((e.Excl & of) == 0) continue;
                if ((given & (ef | of)) != (ef | of)) continue;
                throw XtablesException.Param($"{ext}: option \"--{e.Name}\" cannot be used together with \"--{other.Name}\".\n");
            }
        }
    }

    /// <summary>XTTYPE_HOSTMASK: "host[/plen-or-mask]"; a host alone gives the full length.</summary>
    public static (UInt128 Address, uint Length, UInt128 Mask) HostMask(string arg, IpFamily family, NameDb names, string ext, string option)
    {
        int slash = arg.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            UInt128 a = Host(arg, family, names);
            return (a, (uint)family.AddressBits(), IpNet.FullMask(family));
        }
        UInt128 addr = Host(arg[..slash], family, names);
        (uint len, UInt128 mask) = PlenMask(arg[(slash + 1)..], family, ext, option);
        return (addr, len, mask);
    }

    /// <summary>XTTYPE_PORT (xtables_getportbyname via getaddrinfo): a decimal number or a service name.</summary>
    public static ushort PortByName(string arg, NameDb names)
    {
        int p = -1;
        if (arg.Length == 0)
        {
            p = 0;
        }
        else if (arg.All(char.IsAsciiDigit))
        {
            // getaddrinfo takes a decimal service number modulo 2^16 (70000 gives 4464).
            p = ulong.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out ulong v) ? (int)(v & 0xFFFF) : 0xFFFF;
        }
        else
        {
            p = ServiceToPort(arg, names);
        }
        if (p < 0) throw XtablesException.Param($"Port \"{arg}\" does not resolve to anything.\n");
        return (ushort)p;
    }

    /// <summary>XTTYPE_MARKMASK32 (xtables_parse_val_mask without names): "value[/mask]".</summary>
    public static (uint Value, uint Mask) MarkMask(string arg, string ext, string option)
    {
        string bad = $"{ext}: bad integer value for option \"--{option}\", or out of range.\n";
        string garbage = $"{ext}: trailing garbage after value for option \"--{option}\".\n";
        if (!StrToUi(arg, 0, uint.MaxValue, out ulong value, out int end)) throw XtablesException.Param(bad);
        if (end == arg.Length) return ((uint)value, uint.MaxValue);
        if (arg[end] != '/') throw XtablesException.Param(garbage);
        string rest = arg[(end + 1)..];
        if (!StrToUi(rest, 0, uint.MaxValue, out ulong mask, out int mend)) throw XtablesException.Param(bad);
        if (mend != rest.Length) throw XtablesException.Param(garbage);
        return ((uint)value, (uint)mask);
    }

    public static string Hex(ulong v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    public static string Dec(ulong v) => v.ToString(CultureInfo.InvariantCulture);
}
