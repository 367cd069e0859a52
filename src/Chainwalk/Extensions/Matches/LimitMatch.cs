using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m limit</c> (struct xt_rateinfo): the average as a period in 1/10000 s per packet.</summary>
public sealed class LimitData : ExtensionData
{
    /// <summary>Period between packets, in units of 1/<see cref="LimitMatch.Scale"/> seconds (xt_rateinfo.avg).</summary>
    public uint Avg = LimitMatch.DefaultAvg;

    /// <summary>Bucket size in packets.</summary>
    public uint Burst = LimitMatch.DefaultBurst;
}

/// <summary>
/// <c>-m limit --limit RATE[/unit] --limit-burst N</c> (libxt_limit.c). iptables-nft stores it as a native
/// nft limit (rate per unit), so the period read back is recomputed from that, and a burst of 0 comes back as 5.
/// </summary>
public sealed class LimitMatch : XtExtension<LimitData>
{
    private const int OLimit = 0, OBurst = 1;

    /// <summary>XT_LIMIT_SCALE.</summary>
    public const uint Scale = 10000;

    public const uint DefaultBurst = 5;

    /// <summary>"3/hour".</summary>
    public const uint DefaultAvg = Scale * 3600 / 3;

    public override string Name => "limit";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("limit", OLimit),
        new("limit-burst", OBurst),
    ];

    private static readonly (string Name, uint Mult)[] Rates =
        [("day", Scale * 24 * 60 * 60), ("hour", Scale * 60 * 60), ("min", Scale * 60), ("sec", Scale)];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, LimitData d)
    {
        switch (option.Id)
        {
            case OLimit:
                if (!TryParseRate(argument!, out d.Avg)) throw ctx.Error($"bad rate \"{argument}\"'");
                break;
            case OBurst:
                d.Burst = (uint)XtParse.UIntBad(argument!, 0, 10000, Name, option.Name);
                break;
        }
        if (invert) throw ctx.Error("limit does not support invert");
    }

    /// <summary>parse_rate: "N[/second|minute|hour|day]" (any prefix of the unit); false for a bad rate.</summary>
    internal static bool TryParseRate(string rate, out uint avg)
    {
        avg = 0;
        uint mult = 1;
        int slash = rate.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            string unit = rate[(slash + 1)..];
            if (unit.Length == 0) return false;
            if (IsPrefix(unit, "second")) mult = 1;
            else if (IsPrefix(unit, "minute")) mult = 60;
            else if (IsPrefix(unit, "hour")) mult = 3600;
            else if (IsPrefix(unit, "day")) mult = 86400;
            else return false;
        }
        uint r = unchecked((uint)XtParse.Atoi(rate));
        if (r == 0) return false;
        avg = Scale * mult / r;
        if (avg == 0) throw XtablesException.Param($"Rate too fast \"{rate}\"");
        return true;
    }

    private static bool IsPrefix(string given, string full) =>
        given.Length <= full.Length && string.Compare(given, 0, full, 0, given.Length, StringComparison.OrdinalIgnoreCase) == 0;

    /// <summary>The unit print_rate chooses for a period: the index into <see cref="Rates"/>.</summary>
    private static int RateIndex(uint period)
    {
        int i;
        for (i = 1; i < Rates.Length; i++)
        {
            if (period > Rates[i].Mult || Rates[i].Mult / period < Rates[i].Mult % period) break;
        }
        return i - 1;
    }

    /// <summary>What the rule reads back after nft stored it as "rate per unit" (and burst 0 as the default).</summary>
    protected override void FinalCheck(ParseContext ctx, LimitData d)
    {
        d.Avg = NftRoundTrip(d.Avg);
        if (d.Burst == 0) d.Burst = DefaultBurst;
    }

    internal static uint NftRoundTrip(uint avg)
    {
        if (avg == 0) return 0;
        uint mult = Rates[RateIndex(avg)].Mult;
        uint rate = mult / avg;
        return rate == 0 ? avg : mult / rate;
    }

    internal static void AppendRate(StringBuilder sb, uint period)
    {
        if (period == 0)
        {
            sb.Append(" inf");
            return;
        }
        int i = RateIndex(period);
        sb.Append(' ').Append(XtParse.Dec(Rates[i].Mult / period)).Append('/').Append(Rates[i].Name);
    }

    protected override void Save(StringBuilder sb, LimitData d, IpFamily family)
    {
        sb.Append(" --limit");
        AppendRate(sb, d.Avg);
        if (d.Burst != DefaultBurst) sb.Append(" --limit-burst ").Append(XtParse.Dec(d.Burst));
    }

    protected override void Print(StringBuilder sb, LimitData d, IpFamily family, bool numeric)
    {
        sb.Append(" limit: avg");
        AppendRate(sb, d.Avg);
        sb.Append(" burst ").Append(XtParse.Dec(d.Burst));
    }

    /// <summary>HZ of the virtual kernel: jiffies are milliseconds of the host clock.</summary>
    public const uint Hz = 1000;

    /// <summary>CREDITS_PER_JIFFY: the largest power of two below 0xFFFFFFFF / (HZ*60*60*24) (32 at HZ=1000).</summary>
    public const uint CreditsPerJiffy = 32;

    /// <summary>user2credits: a period in 1/10000 s to credits, avoiding the overflow as xt_limit.c does.</summary>
    public static uint UserToCredits(ulong user)
    {
        if (user > 0xFFFFFFFFUL / (Hz * CreditsPerJiffy)) return unchecked((uint)(user / Scale * Hz * CreditsPerJiffy));
        return unchecked((uint)(user * Hz * CreditsPerJiffy / Scale));
    }

    /// <summary>jiffies on the host clock.</summary>
    public static long Jiffies(double now) => (long)Math.Floor(now * Hz);

    /// <summary>
    /// xt_limit.c's token bucket: the rule starts with a full bucket (burst × cost credits); every jiffy adds
    /// CREDITS_PER_JIFFY up to the cap; a packet costs user2credits(avg). The credit is a u32 in the kernel,
    /// so the refill of a very long pause wraps as it does there. (iptables-nft would hand the kernel an nft
    /// limit expression; Chainwalk follows xt_limit as the legacy kernel path does.)
    /// </summary>
    protected override bool Match(PacketContext ctx, LimitData d)
    {
        LimitState s = ctx.RuleState(() => new LimitState());
        long now = Jiffies(ctx.Now);
        uint cost = UserToCredits(d.Avg), cap = UserToCredits((ulong)d.Avg * d.Burst);
        if (!s.Started)
        {
            s.Started = true;
            s.Prev = now;
            s.Credit = cap;
        }
        long elapsed = now - s.Prev;
        s.Prev = now;
        s.Credit = unchecked((uint)(s.Credit + (ulong)elapsed * CreditsPerJiffy));
        if (s.Credit > cap) s.Credit = cap;
        if (s.Credit >= cost)
        {
            s.Credit -= cost;
            return true;
        }
        return false;
    }
}

/// <summary>A limit rule's bucket (struct xt_limit_priv): credits and the jiffy of the last packet.</summary>
public sealed class LimitState : IRuntimeState
{
    public bool Started;
    public long Prev;
    public uint Credit;

    public System.Text.Json.Nodes.JsonNode? Save() => Started
        ? new System.Text.Json.Nodes.JsonObject { ["prev"] = Prev, ["credit"] = Credit }
        : null;

    public void Load(System.Text.Json.Nodes.JsonNode node)
    {
        Started = true;
        Prev = (long)node["prev"]!;
        Credit = (uint)node["credit"]!;
    }
}
