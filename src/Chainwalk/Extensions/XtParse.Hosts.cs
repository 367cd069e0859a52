using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions;

/// <summary>
/// The xtoptions parsers for host, host/mask, multi-integer ranges and port ranges (XTTYPE_HOST,
/// XTTYPE_HOSTMASK, XTTYPE_UINT*RC, XTTYPE_PORTRC) as libxtables 1.8.9 implements them on top of getaddrinfo.
/// </summary>
public static partial class XtParse
{
    /// <summary>
    /// XTTYPE_HOST: getaddrinfo for the family. Numbers in inet_aton form for IPv4 ("1.2.3" = 1.2.0.3),
    /// inet_pton for IPv6, else /etc/hosts; never DNS (a name not in the file fails as it does offline).
    /// </summary>
    public static UInt128 Host(string text, IpFamily family, NameDb names) =>
        Chainwalk.Extensions.Targets.TargetParsing.Host(text, family, names);

    /// <summary>
    /// XTTYPE_HOSTMASK: "host[/len|/mask]". The address is not masked; a mask that is not a prefix
    /// (or a number out of range read as an address) gives the full mask, as 1.8.9 does.
    /// </summary>
    public static IpNet HostMask(string text, IpFamily family, NameDb names, string ext, string option)
    {
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0) return new IpNet(Host(text, family, names), IpNet.FullMask(family), family);
        UInt128 addr = Host(text[..slash], family, names);
        int len = PrefixLength(text[(slash + 1)..], family, ext, option);
        return new IpNet(addr, IpNet.PrefixMask(family, len), family);
    }

    /// <summary>inet_aton in its exact form: 1 to 4 parts in C notation, the last filling the remaining bytes.</summary>
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
            if (!NumberParsing.TryParseCUnsigned(p, uint.MaxValue, out nums[i])) return false;
        }
        for (int i = 0; i < nums.Length - 1; i++)
        {
            if (nums[i] > 255) return false;
        }
        int lastBytes = 4 - (nums.Length - 1);
        ulong last = nums[^1];
        if (lastBytes < 4 && last >= 1UL << (8 * lastBytes)) return false;
        uint v = 0;
        for (int i = 0; i < nums.Length - 1; i++) v |= (uint)nums[i] << (24 - 8 * i);
        value = v | (uint)last;
        return true;
    }

    /// <summary>
    /// XTTYPE_UINT*RC: "a[:b]" with empty parts meaning 0 and <paramref name="max"/>; at most two parts.
    /// Returns the values and how many were given (1 or 2). 1.8.9 does not check that a &lt;= b.
    /// </summary>
    public static (ulong Min, ulong Max, int Count) UIntRange(string text, ulong max, string ext, string option)
    {
        var vals = new List<ulong>(2);
        int pos = 0;
        while (true)
        {
            if (vals.Count == 2)
                throw XtablesException.Param($"{ext}: Too many components for option \"--{option}\" (max: 2)\n");
            ulong value;
            int end;
            if (pos >= text.Length || text[pos] == ':')
            {
                end = pos;
                value = vals.Count == 1 ? max : 0;
            }
            else
            {
                ReadOnlySpan<char> rest = text.AsSpan(pos);
                int used = NumberParsing.ParseCPrefix(rest, 0, out value, out bool overflow);
                // xtables_strtoul refuses a leading '-' and values beyond the range.
                if (used == 0 || overflow || value > max || rest.TrimStart(" \t\n\r\f\v").StartsWith("-"))
                    throw XtablesException.Param($"{ext}: bad value for option \"--{option}\" near \"{text[pos..]}\", or out of range (0-{max}).\n");
                end = pos + used;
                if (end < text.Length && text[end] != ':')
                    throw XtablesException.Param($"{ext}: Argument to \"--{option}\" has unexpected characters near \"{text[end..]}\".\n");
            }
            vals.Add(value);
            if (end >= text.Length) break;
            pos = end + 1;
        }
        return (vals[0], vals.Count > 1 ? vals[1] : vals[0], vals.Count);
    }

    /// <summary>
    /// xtables_getportbyname through getaddrinfo: a string strtoul reads entirely in base 10 (leading blanks and a
    /// sign allowed) is a number, kept as a C int (negative = refused) and then to 16 bits; else a service name.
    /// </summary>
    public static bool TryServicePort(string text, NameDb names, out ushort port)
    {
        port = 0;
        if (text.Length == 0) return false;
        int used = NumberParsing.ParseCPrefix(text, 10, out ulong v, out bool overflow);
        if (used == text.Length)
        {
            if (overflow) v = ulong.MaxValue;
            if (unchecked((int)v) < 0) return false;
            port = unchecked((ushort)v);
            return true;
        }
        if (names.TryGetServicePort(text, "tcp", out int p) || names.TryGetServicePort(text, "udp", out p) || names.TryGetServicePort(text, "sctp", out p))
        {
            port = (ushort)p;
            return true;
        }
        return false;
    }

    /// <summary>XTTYPE_PORTRC: "a[:b]", empty ends 0 and 65535, a single port meaning a:a (1.8.9: no order check).</summary>
    public static (ushort Low, ushort High) PortRangeRc(string text, NameDb names, string ext, string option)
    {
        string[] parts = text.Split(':');
        ushort lo = 0, hi = ushort.MaxValue;
        for (int i = 0; i < parts.Length; i++)
        {
            if (i == 2) throw XtablesException.Param($"{ext}: Too many components for option \"--{option}\" (max: 2)\n");
            if (parts[i].Length == 0) continue;
            if (!TryServicePort(parts[i], names, out ushort p)) throw XtablesException.Param($"Port \"{parts[i]}\" does not resolve to anything.\n");
            if (i == 0) lo = p;
            else hi = p;
        }
        if (parts.Length == 1) hi = lo;
        return (lo, hi);
    }

    /// <summary>A comma list of names matched case-insensitively by prefix (strncasecmp with the given length), in table order.</summary>
    public static bool TryPrefixName<T>(ReadOnlySpan<char> word, (string Name, T Value)[] table, out T value)
    {
        foreach (var (name, v) in table)
        {
            if (word.Length <= name.Length && name.AsSpan(0, word.Length).Equals(word, StringComparison.OrdinalIgnoreCase))
            {
                value = v;
                return true;
            }
        }
        value = default!;
        return false;
    }

    /// <summary>
    /// xtables_parse_mark_mask / xtables_parse_val_mask without a name map: "value[/mask]" (C notation),
    /// mask defaulting to all ones, with its "bad integer value" and "trailing garbage" messages.
    /// </summary>
    public static (uint Value, uint Mask) ValMask(string text, string ext, string option, IReadOnlyList<(int Id, string Name)>? lmap = null)
    {
        string bad = $"{ext}: bad integer value for option \"--{option}\", or out of range.\n";
        string garbage = $"{ext}: trailing garbage after value for option \"--{option}\".\n";
        if (!TryUIntPrefix(text, uint.MaxValue, out ulong value, out int used))
        {
            if (lmap is not null) return (LmapValue(text, lmap, ext, option), uint.MaxValue);
            throw XtablesException.Param(bad);
        }
        if (used == text.Length) return ((uint)value, uint.MaxValue);
        if (text[used] != '/')
        {
            if (lmap is not null) return (LmapValue(text, lmap, ext, option), uint.MaxValue);
            throw XtablesException.Param(garbage);
        }
        string rest = text[(used + 1)..];
        if (!TryUIntPrefix(rest, uint.MaxValue, out ulong mask, out int used2)) throw XtablesException.Param(bad);
        if (used2 != rest.Length) throw XtablesException.Param(garbage);
        return ((uint)value, (uint)mask);
    }

    private static uint LmapValue(string text, IReadOnlyList<(int Id, string Name)> lmap, string ext, string option)
    {
        foreach (var (id, name) in lmap)
        {
            if (name == text) return (uint)id;
        }
        throw XtablesException.Param($"{ext}: could not map name {text} to an integer value for option \"--{option}\".\n");
    }

    /// <summary>xtables_print_val_mask: " 0xV/0xM", or the map's name for V, or " 0xV".</summary>
    public static void AppendValMask(System.Text.StringBuilder sb, uint value, uint mask, IReadOnlyList<(int Id, string Name)>? lmap)
    {
        if (mask != uint.MaxValue)
        {
            sb.Append(' ').Append(Hex(value)).Append('/').Append(Hex(mask));
            return;
        }
        if (lmap is not null)
        {
            foreach (var (id, name) in lmap)
            {
                if ((uint)id == value)
                {
                    sb.Append(' ').Append(name);
                    return;
                }
            }
        }
        sb.Append(' ').Append(Hex(value));
    }

    /// <summary>
    /// xtables_lmap_init: "ID NAME" lines of an iproute2 file (/etc/iproute2/rt_realms, group) under the
    /// host's etc directory ($CHAINWALK_ETC or /etc); ids 0-255, decimal or 0x hex. Null when the file is missing.
    /// </summary>
    public static IReadOnlyList<(int Id, string Name)>? LoadLmap(string relativePath)
    {
        string etc = Environment.GetEnvironmentVariable("CHAINWALK_ETC") is { Length: > 0 } e ? e : "/etc";
        string path = Path.Combine(etc, relativePath);
        if (!File.Exists(path)) return null;
        var list = new List<(int, string)>();
        foreach (string raw in File.ReadLines(path))
        {
            string cur = raw.TrimStart();
            if (cur.Length == 0 || cur[0] == '#') continue;
            int b = cur.StartsWith("0x", StringComparison.Ordinal) ? 16 : 10;
            int used = NumberParsing.ParseCPrefix(cur, b, out ulong id, out bool overflow);
            if (used == 0 || overflow || id > 255) continue;
            cur = cur[used..];
            if (cur.Length == 0 || !char.IsWhiteSpace(cur[0])) continue;
            cur = cur.TrimStart();
            if (cur.Length == 0 || cur[0] == '#') continue;
            int end = 0;
            while (end < cur.Length && !char.IsWhiteSpace(cur[end])) end++;
            list.Add(((int)id, cur[..end]));
        }
        return list;
    }

    /// <summary>xtables_strtoul with an end pointer: a number in C notation at the start, no leading '-'.</summary>
    public static bool TryUIntPrefix(ReadOnlySpan<char> text, ulong max, out ulong value, out int used)
    {
        used = NumberParsing.ParseCPrefix(text, 0, out value, out bool overflow);
        if (used == 0 || overflow || value > max) return false;
        return !text.TrimStart(" \t\n\r\f\v").StartsWith("-");
    }

    /// <summary>
    /// xtopt_parse_int as 1.8.9 has it: the whole string in C notation within [min, max], else
    /// "EXT: bad value for option \"--OPT\", or out of range (MIN-MAX).".
    /// </summary>
    public static ulong UIntStrict(string text, ulong min, ulong max, string ext, string option)
    {
        if (TryUIntPrefix(text, max, out ulong v, out int used) && used == text.Length && v >= min) return v;
        throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range ({min}-{max}).\n");
    }

    public static ulong UInt8Strict(string text, string ext, string option) => UIntStrict(text, 0, byte.MaxValue, ext, option);

    /// <summary>
    /// XTTYPE_PLEN/PLENMASK: a prefix length 0..32/128, or a mask in address form; a mask that is not a
    /// prefix yields the full length (1.8.9 stores -1 into a byte and shifts by nothing).
    /// </summary>
    public static int PrefixLength(string m, IpFamily family, string ext, string option)
    {
        int width = family.AddressBits();
        if (NumberParsing.TryParseCUnsigned(m, (ulong)width, out ulong bits)) return (int)bits;
        UInt128 mask;
        if (family == IpFamily.V4 && TryInetAton(m, out uint m4)) mask = m4;
        else if (family == IpFamily.V6 && IpNet.TryParseV6Numeric(m, out UInt128 m6)) mask = m6;
        else throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", neither a valid network mask nor valid CIDR (0-{width}).\n");
        int len = IpNet.MaskToCidr(mask, family);
        return len < 0 ? width : len;
    }
}
