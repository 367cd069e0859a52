using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j TOS</c> (struct xt_tos_target_info): new TOS = (old &amp; ~mask) ^ value.</summary>
public sealed class TosData : ExtensionData
{
    public byte Value;
    public byte Mask;
}

/// <summary>
/// <c>-j TOS --set-tos value[/mask]|symbol | --and-tos | --or-tos | --xor-tos</c> (libxt_TOS.c revision 1,
/// xt_DSCP.c). mangle table; exactly one option.
/// </summary>
public sealed class TosTarget : XtExtension<TosData>
{
    private const int SetTos = 0, AndTos = 1, OrTos = 2, XorTos = 3;
    private const ulong Any = 0b1111;

    internal static readonly (byte Value, string Name)[] Symbols =
    [
        (0x10, "Minimize-Delay"),
        (0x08, "Maximize-Throughput"),
        (0x04, "Maximize-Reliability"),
        (0x02, "Minimize-Cost"),
        (0x00, "Normal-Service"),
    ];

    public override string Name => "TOS";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle"];

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("set-tos", SetTos),
        new("and-tos", AndTos),
        new("or-tos", OrTos),
        new("xor-tos", XorTos),
    ];

    protected override void Init(ParseContext ctx, TosData data) => data.Revision = 1;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TosData d)
    {
        string arg = argument!;
        if (option.Id == SetTos)
        {
            (d.Value, d.Mask) = ParseTosMask(arg, 0x3F);
            return;
        }
        TargetParsing.IntOptionRange(arg, 0, byte.MaxValue, Name, option.Name, out ulong v);
        byte b = (byte)v;
        (d.Value, d.Mask) = option.Id switch
        {
            AndTos => ((byte)0, (byte)~b),
            OrTos => (b, b),
            _ => (b, (byte)0),
        };
    }

    /// <summary>XTTYPE_TOSMASK: "value[/mask]" (mask defaults to 0xff) or a symbol (mask = <paramref name="symbolMask"/>).</summary>
    internal static (byte Value, byte Mask) ParseTosMask(string arg, byte symbolMask)
    {
        if (TargetParsing.StrToUi(arg, 0, byte.MaxValue, out ulong value, out int end))
        {
            byte mask = 0xFF;
            if (end < arg.Length && arg[end] == '/')
            {
                string m = arg[(end + 1)..];
                if (!TargetParsing.StrToUi(m, 0, byte.MaxValue, out ulong mv, out int mend))
                    throw XtablesException.Param($"Illegal value: \"{arg}\"");
                mask = (byte)mv;
                end = end + 1 + mend;
            }
            if (end != arg.Length) throw XtablesException.Param($"Illegal value: \"{arg}\"");
            return ((byte)value, mask);
        }
        foreach (var (v, name) in Symbols)
        {
            if (string.Equals(name, arg, StringComparison.OrdinalIgnoreCase)) return (v, symbolMask);
        }
        throw XtablesException.Param($"Symbolic name \"{arg}\" is unknown");
    }

    protected override void FinalCheck(ParseContext ctx, TosData d)
    {
        if ((d.Given & Any) == 0) throw XtablesException.Param("TOS: An action is required");
        TargetParsing.OptionsFcheck(Name, d.Given,
        [
            (SetTos, "set-tos", false, Any, 0),
            (AndTos, "and-tos", false, Any, 0),
            (OrTos, "or-tos", false, Any, 0),
            (XorTos, "xor-tos", false, Any, 0),
        ]);
    }

    private static string Hex2(byte b) => "0x" + b.ToString("x2", CultureInfo.InvariantCulture);

    protected override void Save(StringBuilder sb, TosData d, IpFamily family) =>
        sb.Append(" --set-tos ").Append(Hex2(d.Value)).Append('/').Append(Hex2(d.Mask));

    protected override void Print(StringBuilder sb, TosData d, IpFamily family, bool numeric)
    {
        if (numeric)
        {
            sb.Append(" TOS set ").Append(Hex2(d.Value)).Append('/').Append(Hex2(d.Mask));
            return;
        }
        if (d.Mask == 0x3F)
        {
            foreach (var (v, name) in Symbols)
            {
                // tos_try_print_symbolic prints " %s%s" with the prefix " TOS set": two spaces, no space after "set".
                if (v == d.Value)
                {
                    sb.Append("  TOS set").Append(name);
                    return;
                }
            }
        }
        if (d.Value == 0) sb.Append(" TOS and ").Append(Hex2((byte)~d.Mask));
        else if (d.Value == d.Mask) sb.Append(" TOS or ").Append(Hex2(d.Value));
        else if (d.Mask == 0) sb.Append(" TOS xor ").Append(Hex2(d.Value));
        else sb.Append(" TOS set ").Append(Hex2(d.Value)).Append('/').Append(Hex2(d.Mask));
    }

    /// <summary>xt_DSCP.c tos_tg / tos_tg6: DS field = (DS field &amp; ~mask) ^ value, written only when it changes.</summary>
    protected override Verdict Execute(PacketContext ctx, TosData data)
    {
        Packet p = ctx.Packet;
        byte old = TargetEdits.DsField(p);
        byte nv = (byte)((old & ~data.Mask) ^ data.Value);
        if (nv != old)
        {
            TargetEdits.SetDsField(p, nv);
            ctx.Changed($"TOS 0x{old:x2}→0x{nv:x2}");
        }
        return Verdict.Continue;
    }
}
