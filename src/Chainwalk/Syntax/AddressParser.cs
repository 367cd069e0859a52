using Chainwalk.Net;

namespace Chainwalk.Syntax;

/// <summary>
/// The address and interface syntax of libxtables: <c>-s a[/m][,b[/m]…]</c> (xtables_ipparse_multiple
/// and its IPv6 twin), names from /etc/hosts and /etc/networks, and <c>-i name[+]</c>.
/// </summary>
public static class AddressParser
{
    /// <summary>Parses a comma-separated address list; each address is masked by its own mask.</summary>
    public static List<IpNet> ParseMultiple(string text, IpFamily family, NameDb names)
    {
        if (family == IpFamily.V4 && TryParsePlainV4(text, out IpNet plain)) return new List<IpNet>(1) { plain };
        return ParseMultipleGeneral(text, family, names);
    }

    private static List<IpNet> ParseMultipleGeneral(string text, IpFamily family, NameDb names)
    {
        var result = new List<IpNet>();
        foreach (string piece in text.Split(','))
        {
            string buf = piece.TrimStart(' ', '\t', '\n', '\r', '\f', '\v').TrimEnd(' ', '\t', '\n', '\r', '\f', '\v');
            if (buf.Length > 255) throw XtablesException.Param("Hostname too long");
            UInt128 mask;
            int slash = buf.LastIndexOf('/');
            if (slash >= 0)
            {
                mask = ParseMask(buf[(slash + 1)..], family);
                buf = buf[..slash];
            }
            else
            {
                mask = IpNet.FullMask(family);
            }
            if (mask == UInt128.Zero) buf = family == IpFamily.V4 ? "0.0.0.0" : "::";
            foreach (UInt128 a in ParseHostNetwork(buf, family, names))
            {
                result.Add(new IpNet(a & mask, mask, family));
            }
        }
        return result;
    }

    /// <summary>
    /// The common case of <see cref="ParseMultiple"/> without its allocations: one plain dotted quad (decimal
    /// octets without leading zeros) with an optional decimal prefix length; anything else takes the general path,
    /// which reads such text to the same result.
    /// </summary>
    internal static bool TryParsePlainV4(ReadOnlySpan<char> text, out IpNet net)
    {
        net = default;
        ReadOnlySpan<char> s = text;
        uint address = 0;
        int i = 0;
        for (int octet = 0; octet < 4; octet++)
        {
            if (octet > 0)
            {
                if (i >= s.Length || s[i] != '.') return false;
                i++;
            }
            if (!TryPlainDecimal(s, ref i, 255, out uint b)) return false;
            address = (address << 8) | b;
        }
        int bits = 32;
        if (i < s.Length)
        {
            if (s[i] != '/') return false;
            i++;
            if (!TryPlainDecimal(s, ref i, 32, out uint len) || i != s.Length) return false;
            bits = (int)len;
        }
        uint mask = bits == 0 ? 0 : uint.MaxValue << (32 - bits);
        net = IpNet.V4(address & mask, mask);
        return true;
    }

    private static bool TryPlainDecimal(ReadOnlySpan<char> s, ref int i, uint max, out uint value)
    {
        value = 0;
        int start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i]) && i - start < 3)
        {
            value = value * 10 + (uint)(s[i] - '0');
            i++;
        }
        int digits = i - start;
        if (digits == 0 || (digits > 1 && s[start] == '0')) return false;
        if (i < s.Length && char.IsAsciiDigit(s[i])) return false;
        return value <= max;
    }

    /// <summary>A mask: dotted/colon form or a prefix length ("invalid mask `x' specified").</summary>
    public static UInt128 ParseMask(string text, IpFamily family)
    {
        if (family == IpFamily.V4)
        {
            if (IpNet.TryParseV4Numeric(text, isMask: true, out uint m)) return m;
            if (!NumberParsing.TryParseCUnsigned(text, 32, out ulong bits)) throw XtablesException.Param($"invalid mask `{text}' specified");
            return IpNet.PrefixMask(family, (int)bits);
        }
        if (IpNet.TryParseV6Numeric(text, out UInt128 m6)) return m6;
        if (!NumberParsing.TryParseCUnsigned(text, 128, out ulong bits6)) throw XtablesException.Param($"invalid mask `{text}' specified");
        return IpNet.PrefixMask(family, (int)bits6);
    }

    /// <summary>A numeric address, a network name (IPv4) or a host name; "host/network `x' not found" otherwise.</summary>
    public static IReadOnlyList<UInt128> ParseHostNetwork(string text, IpFamily family, NameDb names)
    {
        if (family == IpFamily.V4)
        {
            if (IpNet.TryParseV4Numeric(text, false, out uint v)) return [v];
            if (names.TryGetNetwork(text, out uint net)) return [net];
        }
        else if (IpNet.TryParseV6Numeric(text, out UInt128 v6))
        {
            return [v6];
        }
        IReadOnlyList<UInt128> hosts = text.Length == 0 ? [] : names.HostAddresses(text, family);
        if (hosts.Count > 0) return hosts;
        throw XtablesException.Param($"host/network `{text}' not found");
    }

    /// <summary>xtables_parse_interface: returns the name as given (a trailing '+' kept), after the length check.</summary>
    public static string ParseInterface(string text, List<string>? warnings)
    {
        if (text.Length + 1 > 16) throw XtablesException.Param($"interface name `{text}' must be shorter than IFNAMSIZ (15)");
        if (text.Length > 0 && text[^1] != '+' && (text.Contains('/', StringComparison.Ordinal) || text.Contains(' ', StringComparison.Ordinal)))
        {
            warnings?.Add($"Warning: weird character in interface `{text}' ('/' and ' ' are not allowed by the kernel).");
        }
        return text;
    }
}
