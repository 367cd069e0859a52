using Chainwalk.Conntrack;
using Chainwalk.Engine;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// <c>-j NOTRACK</c>: an alias of CT revision 2 with the notrack flags and no options (libxt_CT.c). It is
/// saved as <c>-j NOTRACK</c> but the kernel knows it as CT, so -L shows CT in the target column and
/// " NOTRACK" after the addresses. Raw table only.
/// </summary>
public sealed class NotrackTarget : XtExtension<CtData>
{
    private static readonly CtTarget Ct = new();

    public override string Name => "NOTRACK";

    public override string RealName => "CT";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<string>? Tables => ["raw"];

    public override IReadOnlyList<XtOption> Options { get; } = [];

    protected override void Init(ParseContext ctx, CtData data)
    {
        data.Revision = 2;
        data.Flags = CtData.FlagNotrack | CtData.FlagNotrackAlias;
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, CtData data)
    {
    }

    /// <summary>The CT target with --notrack: the packet is untracked.</summary>
    protected override Verdict Execute(PacketContext ctx, CtData d) => CtTarget.Apply(ctx, d);

    protected override void Save(StringBuilder sb, CtData d, IpFamily family) => Ct.Save(sb, d, family);

    protected override void Print(StringBuilder sb, CtData d, IpFamily family, bool numeric) => Ct.Print(sb, d, family, numeric);
}
