using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j CHECKSUM</c> (struct xt_CHECKSUM_info).</summary>
public sealed class ChecksumData : ExtensionData
{
    /// <summary>XT_CHECKSUM_OP_FILL.</summary>
    public bool Fill;
}

/// <summary><c>-j CHECKSUM --checksum-fill</c> (libxt_CHECKSUM.c, xt_CHECKSUM.c): mangle table only.</summary>
public sealed class ChecksumTarget : XtExtension<ChecksumData>
{
    public override string Name => "CHECKSUM";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables => ["mangle"];

    public override IReadOnlyList<XtOption> Options { get; } = [new("checksum-fill", 0, OptionArg.None, OptFlags.Mandatory)];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, ChecksumData d) => d.Fill = true;

    protected override void Save(StringBuilder sb, ChecksumData d, IpFamily family)
    {
        if (d.Fill) sb.Append(" --checksum-fill");
    }

    protected override void Print(StringBuilder sb, ChecksumData d, IpFamily family, bool numeric)
    {
        sb.Append(" CHECKSUM");
        if (d.Fill) sb.Append(" fill");
    }
}
