using System.Text;
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
}
