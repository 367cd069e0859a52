using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m tos</c> revision 1 (struct xt_tos_match_info).</summary>
public sealed class TosData : ExtensionData
{
    public byte Value;
    public byte Mask;
    public bool Invert;
}

/// <summary>
/// <c>-m tos [!] --tos value[/mask]|SYMBOL</c> (libxt_tos.c revision 1, xt_dscp.c). A number's mask defaults to
/// 0xff, a symbol's to 0x3f. The list form has no space before the value ("tos match0x10/0xff").
/// </summary>
public sealed class TosMatch : XtExtension<TosData>
{
    public override string Name => "tos";

    /// <summary>The revision iptables 1.8.9 uses with this kernel.</summary>
    protected override void Init(ParseContext ctx, TosData data) => data.Revision = 1;

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("tos", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    internal static readonly (string Name, byte Value)[] Symbols =
    [
        ("Minimize-Delay", 0x10), ("Maximize-Throughput", 0x08), ("Maximize-Reliability", 0x04), ("Minimize-Cost", 0x02),
        ("Normal-Service", 0x00),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TosData d)
    {
        (d.Value, d.Mask) = ParseTosMask(argument!, 0x3F);
        if (invert) d.Invert = true;
    }

    /// <summary>XTTYPE_TOSMASK: "value[/mask]" (0-255, mask defaulting to 0xff) or a symbol with <paramref name="symbolMask"/>.</summary>
    internal static (byte Value, byte Mask) ParseTosMask(string arg, byte symbolMask)
    {
        if (XtParse.TryUIntPrefix(arg, byte.MaxValue, out ulong v, out int used))
        {
            byte mask = byte.MaxValue;
            if (used < arg.Length && arg[used] == '/')
            {
                string rest = arg[(used + 1)..];
                if (!XtParse.TryUIntPrefix(rest, byte.MaxValue, out ulong m, out int used2)) throw XtablesException.Param($"Illegal value: \"{arg}\"");
                mask = (byte)m;
                used = used + 1 + used2;
            }
            if (used != arg.Length) throw XtablesException.Param($"Illegal value: \"{arg}\"");
            return ((byte)v, mask);
        }
        foreach (var (name, value) in Symbols)
        {
            if (string.Equals(name, arg, StringComparison.OrdinalIgnoreCase)) return (value, symbolMask);
        }
        throw XtablesException.Param($"Symbolic name \"{arg}\" is unknown");
    }

    internal static string? SymbolName(byte value, byte mask)
    {
        if (mask != 0x3F) return null;
        foreach (var (name, v) in Symbols)
        {
            if (v == value) return name;
        }
        return null;
    }

    private static string Hex2(byte b) => "0x" + b.ToString("x2", CultureInfo.InvariantCulture);

    protected override void Save(StringBuilder sb, TosData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --tos ").Append(Hex2(d.Value)).Append('/').Append(Hex2(d.Mask));
    }

    protected override void Print(StringBuilder sb, TosData d, IpFamily family, bool numeric)
    {
        sb.Append(" tos match");
        if (d.Invert) sb.Append('!');
        string? sym = numeric ? null : SymbolName(d.Value, d.Mask);
        if (sym is not null) sb.Append(' ').Append(sym);
        else sb.Append(Hex2(d.Value)).Append('/').Append(Hex2(d.Mask));
    }

    /// <summary>Evaluates the match (xt_dscp.c tos_mt): the TOS or traffic class under the mask equals the value.</summary>
    protected override bool Match(PacketContext ctx, TosData d) =>
        ((HeaderReads.DsField(ctx.Packet) & d.Mask) == d.Value) != d.Invert;
}
