using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m dscp</c> (struct xt_dscp_info).</summary>
public sealed class DscpData : ExtensionData
{
    public byte Dscp;
    public bool Invert;
}

/// <summary><c>-m dscp [!] --dscp N | [!] --dscp-class CLASS</c> (libxt_dscp.c, xt_dscp.c).</summary>
public sealed class DscpMatch : XtExtension<DscpData>
{
    private const int ODscp = 0, OClass = 1;

    public override string Name => "dscp";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("dscp", ODscp, OptionArg.Required, OptFlags.Invert) { Excludes = 1UL << OClass },
        new("dscp-class", OClass, OptionArg.Required, OptFlags.Invert) { Excludes = 1UL << ODscp },
    ];

    /// <summary>The DiffServ class names of dscp_helper.c, in its order.</summary>
    internal static readonly (string Name, byte Dscp)[] Classes =
    [
        ("CS0", 0x00), ("CS1", 0x08), ("CS2", 0x10), ("CS3", 0x18), ("CS4", 0x20), ("CS5", 0x28), ("CS6", 0x30), ("CS7", 0x38),
        ("BE", 0x00), ("AF11", 0x0a), ("AF12", 0x0c), ("AF13", 0x0e), ("AF21", 0x12), ("AF22", 0x14), ("AF23", 0x16),
        ("AF31", 0x1a), ("AF32", 0x1c), ("AF33", 0x1e), ("AF41", 0x22), ("AF42", 0x24), ("AF43", 0x26), ("EF", 0x2e),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, DscpData d)
    {
        d.Dscp = option.Id == ODscp
            ? (byte)XtParse.UIntStrict(argument!, 0, 0x3F, Name, option.Name)
            : ClassToDscp(argument!);
        if (invert) d.Invert = true;
    }

    /// <summary>class_to_dscp: the first class whose name starts the argument (case-insensitive).</summary>
    internal static byte ClassToDscp(string arg)
    {
        foreach (var (name, dscp) in Classes)
        {
            if (arg.StartsWith(name, StringComparison.OrdinalIgnoreCase)) return dscp;
        }
        throw XtablesException.Param($"Invalid DSCP value `{arg}'");
    }

    protected override void FinalCheck(ParseContext ctx, DscpData d)
    {
        if (d.Given == 0) throw ctx.Error("DSCP match: Parameter --dscp is required");
    }

    private static string Hex2(byte b) => "0x" + b.ToString("x2", CultureInfo.InvariantCulture);

    protected override void Save(StringBuilder sb, DscpData d, IpFamily family)
    {
        sb.Append(d.Invert ? " !" : string.Empty).Append(" --dscp ").Append(Hex2(d.Dscp));
    }

    protected override void Print(StringBuilder sb, DscpData d, IpFamily family, bool numeric)
    {
        sb.Append(" DSCP match ").Append(d.Invert ? "!" : string.Empty).Append(Hex2(d.Dscp));
    }

    /// <summary>Evaluates the match (xt_dscp.c dscp_mt): the upper six bits of the DS field.</summary>
    protected override bool Match(PacketContext ctx, DscpData d) =>
        ((HeaderReads.DsField(ctx.Packet) >> 2) == d.Dscp) != d.Invert;
}
