using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m quota</c> (struct xt_quota_info).</summary>
public sealed class QuotaData : ExtensionData
{
    /// <summary>Bytes the rule may pass before it stops matching.</summary>
    public ulong Quota;

    public bool Invert;
}

/// <summary><c>-m quota [!] --quota BYTES</c> (libxt_quota.c, xt_quota.c).</summary>
public sealed class QuotaMatch : XtExtension<QuotaData>
{
    private const int OQuota = 0;

    public override string Name => "quota";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("quota", OQuota, OptionArg.Required, OptFlags.Mandatory | OptFlags.Invert),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, QuotaData d)
    {
        d.Quota = XtParse.UIntBad(argument!, 0, ulong.MaxValue, Name, option.Name);
        if (invert) d.Invert = true;
    }

    protected override void Save(StringBuilder sb, QuotaData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --quota ").Append(XtParse.Dec(d.Quota));
    }

    protected override void Print(StringBuilder sb, QuotaData d, IpFamily family, bool numeric) =>
        sb.Append(" quota: ").Append(XtParse.Dec(d.Quota)).Append(" bytes");

    /// <summary>
    /// xt_quota.c: while the remainder covers the packet's length it is decreased and the rule matches
    /// (does not match with !); the first packet larger than the remainder sets it to 0 for good.
    /// </summary>
    protected override bool Match(PacketContext ctx, QuotaData d)
    {
        QuotaState s = ctx.RuleState(() => new QuotaState { Remaining = d.Quota, Initial = d.Quota });
        bool ret = d.Invert;
        ulong len = (ulong)ctx.Skb.Length;
        if (s.Remaining >= len)
        {
            s.Remaining -= len;
            ret = !ret;
        }
        else
        {
            s.Remaining = 0;
        }
        return ret;
    }
}

/// <summary>A quota rule's remaining bytes (struct xt_quota_priv).</summary>
public sealed class QuotaState : IRuntimeState
{
    public ulong Remaining;
    public ulong Initial;

    public System.Text.Json.Nodes.JsonNode? Save() => Remaining == Initial ? null : System.Text.Json.Nodes.JsonValue.Create(Remaining);

    public void Load(System.Text.Json.Nodes.JsonNode node) => Remaining = (ulong)node;
}
