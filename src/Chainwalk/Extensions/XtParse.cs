using System.Globalization;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions;

/// <summary>Shared argument parsers of libxtables (xtables_parse_port, xtables_strtoui, mark/mask …).</summary>
public static partial class XtParse
{
    /// <summary>xtables_parse_port: a number 0-65535 (C notation) or a service name from /etc/services for <paramref name="proto"/>.</summary>
    public static ushort Port(string text, string proto, NameDb names)
    {
        if (NumberParsing.TryParseCUnsigned(text, ushort.MaxValue, out ulong n)) return (ushort)n;
        if (names.TryGetServicePort(text, proto, out int p)) return (ushort)p;
        throw XtablesException.Param($"invalid port/service `{text}' specified");
    }

    /// <summary><see cref="Port(string, string, NameDb)"/> of one end of a range: a number without making a string.</summary>
    private static ushort Port(ReadOnlySpan<char> text, string proto, NameDb names) =>
        NumberParsing.TryParseCUnsigned(text, ushort.MaxValue, out ulong n) ? (ushort)n : Port(text.ToString(), proto, names);

    /// <summary>A port or "a:b" range, empty ends meaning 0 and 65535 (parse_tcp_ports / parse_udp_ports).</summary>
    public static (ushort Min, ushort Max) PortRange(string text, string proto, NameDb names)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            ushort p = Port(text, proto, names);
            return (p, p);
        }
        ushort min = colon > 0 ? Port(text.AsSpan(0, colon), proto, names) : (ushort)0;
        ushort max = colon < text.Length - 1 ? Port(text.AsSpan(colon + 1), proto, names) : ushort.MaxValue;
        if (min > max) throw XtablesException.Param("invalid portrange (min > max)");
        return (min, max);
    }

    /// <summary>xtables_strtoui(s, NULL, &amp;v, min, max): the whole string, C notation.</summary>
    public static bool TryUInt(string text, ulong min, ulong max, out ulong value) =>
        NumberParsing.TryParseCUnsigned(text, max, out value, min);

    /// <summary>An unsigned integer option; otherwise the xtoptions message "EXT: bad value for option \"--OPT\"…".</summary>
    public static ulong UInt(string text, ulong min, ulong max, string ext, string option)
    {
        if (NumberParsing.TryParseCUnsigned(text, max, out ulong v, min)) return v;
        if (NumberParsing.TryParseCUnsigned(text, ulong.MaxValue, out _))
        {
            throw XtablesException.Param($"{ext}: Value \"{text}\" for option \"--{option}\" is out of range (permitted range {min}-{max}).\n");
        }
        throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range ({min}-{max}).\n");
    }

    /// <summary>XTTYPE_MARKMASK32: "value[/mask]", mask defaulting to all ones.</summary>
    public static (uint Value, uint Mask) MarkMask(string text, string ext, string option)
    {
        int slash = text.IndexOf('/', StringComparison.Ordinal);
        string v = slash < 0 ? text : text[..slash];
        if (!NumberParsing.TryParseCUnsigned(v, uint.MaxValue, out ulong value))
            throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range (0-4294967295).\n");
        ulong mask = uint.MaxValue;
        if (slash >= 0 && !NumberParsing.TryParseCUnsigned(text.AsSpan(slash + 1), uint.MaxValue, out mask))
            throw XtablesException.Param($"{ext}: bad value for option \"--{option}\", or out of range (0-4294967295).\n");
        return ((uint)value, (uint)mask);
    }

    public static string Hex(uint v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    public static string Dec(ulong v) => v.ToString(CultureInfo.InvariantCulture);
}
