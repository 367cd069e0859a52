using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>TRACE has no options.</summary>
public sealed class TraceData : ExtensionData
{
}

/// <summary>
/// <c>-j TRACE</c> (libxt_TRACE.c). iptables-nft turns it into "meta nftrace set 1", so unlike the
/// xt_TRACE module it is accepted in every table, not only raw.
/// </summary>
public sealed class TraceTarget : XtExtension<TraceData>
{
    public override string Name => "TRACE";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override IReadOnlyList<XtOption> Options { get; } = [];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TraceData data)
    {
    }

    protected override void Save(StringBuilder sb, TraceData d, IpFamily family)
    {
    }

    protected override void Print(StringBuilder sb, TraceData d, IpFamily family, bool numeric)
    {
    }

    /// <summary>xt_TRACE.c: skb->nf_trace = 1; the walker writes TRACE lines from here on.</summary>
    protected override Verdict Execute(PacketContext ctx, TraceData data)
    {
        ctx.Skb.Trace = true;
        return Verdict.Continue;
    }
}
