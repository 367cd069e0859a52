using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j DSCP</c> (struct xt_DSCP_info).</summary>
public sealed class DscpData : ExtensionData
{
    /// <summary>The 6-bit DiffServ code point to write.</summary>
    public byte Dscp;
}

/// <summary>
/// <c>-j DSCP --set-dscp N | --set-dscp-class CLASS</c> (libxt_DSCP.c, xt_DSCP.c). mangle table.
/// </summary>
public sealed class DscpTarget : XtExtension<DscpData>
{
    private const int SetDscp = 0, SetDscpClass = 1;

    /// <summary>The DiffServ class names (dscp_helper.c); a name matches when the argument starts with it.</summary>
    internal static readonly (string Name, byte Dscp)[] Classes =
    [
        ("CS0", 0x00), ("CS1", 0x08), ("CS2", 0x10), ("CS3", 0x18), ("CS4", 0x20), ("CS5", 0x28), ("CS6", 0x30), ("CS7", 0x38),
        ("BE", 0x00), ("AF11", 0x0a), ("AF12", 0x0c), ("AF13", 0x0e), ("AF21", 0x12), ("AF22", 0x14), ("AF23", 0x16),
        ("AF31", 0x1a), ("AF32", 0x1c), ("AF33", 0x1e), ("AF41", 0x22), ("AF42", 0x24), ("AF43", 0x26), ("EF", 0x2e),
    ];

    public override string Name => "DSCP";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables { get; } = ["mangle"];

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("set-dscp", SetDscp),
        new("set-dscp-class", SetDscpClass),
    ];

    internal static byte ClassToDscp(string name)
    {
        foreach (var (cls, dscp) in Classes)
        {
            if (name.Length >= cls.Length && string.Compare(name, 0, cls, 0, cls.Length, StringComparison.OrdinalIgnoreCase) == 0) return dscp;
        }
        throw XtablesException.Param($"Invalid DSCP value `{name}'");
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, DscpData d)
    {
        if (option.Id == SetDscp)
        {
            TargetParsing.IntOptionRange(argument!, 0, 0x3F, Name, option.Name, out ulong v);
            d.Dscp = (byte)v;
        }
        else
        {
            d.Dscp = ClassToDscp(argument!);
        }
    }

    protected override void FinalCheck(ParseContext ctx, DscpData d)
    {
        if (d.Given == 0) throw XtablesException.Param("DSCP target: Parameter --set-dscp is required");
        TargetParsing.OptionsFcheck(Name, d.Given,
        [
            (SetDscp, "set-dscp", false, 1UL << SetDscpClass, 0),
            (SetDscpClass, "set-dscp-class", false, 1UL << SetDscp, 0),
        ]);
    }

    private static string Hex2(byte b) => "0x" + b.ToString("x2", CultureInfo.InvariantCulture);

    protected override void Save(StringBuilder sb, DscpData d, IpFamily family) => sb.Append(" --set-dscp ").Append(Hex2(d.Dscp));

    protected override void Print(StringBuilder sb, DscpData d, IpFamily family, bool numeric) => sb.Append(" DSCP set ").Append(Hex2(d.Dscp));

    protected override string? CheckEntry(RuleCheckContext ctx, DscpData d) => d.Dscp > 0x3F ? RulesetEditor.InvalidArgument : null;

    /// <summary>xt_DSCP.c dscp_tg / dscp_tg6: the upper six bits of the DS field set, the ECN bits kept; only when they differ.</summary>
    protected override Verdict Execute(PacketContext ctx, DscpData data)
    {
        Packet p = ctx.Packet;
        byte old = TargetEdits.DsField(p);
        if (old >> 2 != data.Dscp)
        {
            byte nv = (byte)((old & 0x03) | (data.Dscp << 2));
            TargetEdits.SetDsField(p, nv);
            ctx.Changed($"DSCP 0x{old >> 2:x2}→0x{data.Dscp:x2}");
        }
        return Verdict.Continue;
    }
}
