using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m statistic</c> (struct xt_statistic_info).</summary>
public sealed class StatisticData : ExtensionData
{
    /// <summary>False = random mode (XT_STATISTIC_MODE_RANDOM), true = nth mode.</summary>
    public bool Nth;

    public bool Invert;

    /// <summary>Random mode: the probability scaled by 2^31.</summary>
    public uint Probability;

    /// <summary>Nth mode: n - 1 (the kernel's "every").</summary>
    public uint Every;

    /// <summary>Nth mode: the initial counter value.</summary>
    public uint Packet;

    /// <summary>Nth mode: the kernel's running count at load time (every - packet).</summary>
    public uint Count;
}

/// <summary><c>-m statistic --mode random|nth</c> (libxt_statistic.c, xt_statistic.c).</summary>
public sealed class StatisticMatch : XtExtension<StatisticData>
{
    private const int OMode = 0, OProbability = 1, OEvery = 2, OPacket = 3;

    public override string Name => "statistic";

    public override ExtensionKind Kind => ExtensionKind.Match;

    /// <inheritdoc/>
    public override bool SharesEqualData => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("mode", OMode, OptionArg.Required, OptFlags.Mandatory),
        new("probability", OProbability, OptionArg.Required, OptFlags.Invert) { Excludes = (1 << OEvery) | (1 << OPacket) },
        new("every", OEvery, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OProbability, Also = 1 << OPacket },
        new("packet", OPacket) { Excludes = 1 << OProbability, Also = 1 << OEvery },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, StatisticData d)
    {
        if (invert) d.Invert = true;
        switch (option.Id)
        {
            case OMode:
                if (argument == "random") d.Nth = false;
                else if (argument == "nth") d.Nth = true;
                else throw ctx.Error($"Bad mode \"{argument}\"");
                break;
            case OProbability:
                if (!XtParse.TryStrtod(argument!, out double p) || p < 0 || p > 1)
                    throw ctx.Error($"{Name}: bad value for option \"--{option.Name}\", or out of range (0-1).\n");
                d.Probability = (uint)Math.Round(0x80000000 * p, MidpointRounding.AwayFromZero);
                break;
            case OEvery:
                d.Every = (uint)XtParse.UIntBad(argument!, 1, uint.MaxValue, Name, option.Name) - 1;
                break;
            case OPacket:
                d.Packet = (uint)XtParse.UIntBad(argument!, 0, uint.MaxValue, Name, option.Name);
                break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, StatisticData d)
    {
        const ulong fProb = 1 << OProbability, fEvery = 1 << OEvery, fPacket = 1 << OPacket;
        if (!d.Nth && (d.Given & fProb) == 0) throw ctx.Error("--probability must be specified when using random mode");
        if (d.Nth && (d.Given & (fEvery | fPacket)) == 0) throw ctx.Error("--every and --packet must be specified when using nth mode");
        if (d.Packet > d.Every) throw ctx.Error("the --packet p must be 0 <= p <= n-1");
        d.Count = d.Every - d.Packet;
    }

    private static void Append(StringBuilder sb, StatisticData d, string prefix)
    {
        if (!d.Nth)
        {
            sb.Append(' ').Append(prefix).Append("mode random").Append(d.Invert ? " !" : string.Empty)
              .Append(' ').Append(prefix).Append("probability ")
              .Append((1.0 * d.Probability / 0x80000000).ToString("F11", CultureInfo.InvariantCulture));
            return;
        }
        sb.Append(' ').Append(prefix).Append("mode nth").Append(d.Invert ? " !" : string.Empty)
          .Append(' ').Append(prefix).Append("every ").Append(XtParse.Dec((ulong)d.Every + 1));
        if (d.Packet != 0 || prefix.Length > 0) sb.Append(' ').Append(prefix).Append("packet ").Append(XtParse.Dec(d.Packet));
    }

    protected override void Save(StringBuilder sb, StatisticData d, IpFamily family) => Append(sb, d, "--");

    protected override void Print(StringBuilder sb, StatisticData d, IpFamily family, bool numeric)
    {
        sb.Append(" statistic");
        Append(sb, d, string.Empty);
    }

    /// <summary>
    /// xt_statistic.c. Random: (random u32 &amp; 0x7FFFFFFF) &lt; probability. Nth: a counter starting at
    /// every - packet steps to 0 after reaching every, and the rule matches when it becomes 0.
    /// </summary>
    protected override bool Match(PacketContext ctx, StatisticData d)
    {
        bool ret = d.Invert;
        if (!d.Nth) return RandomMode(ctx, d.Probability, d.Invert);
        return Nth(ctx, d) ? !ret : ret;
    }

    /// <summary>The random mode: get_random_u32() &amp; 0x7FFFFFFF below the probability (also the flat walk's inline test).</summary>
    internal static bool RandomMode(PacketContext ctx, uint probability, bool invert)
    {
        uint r = SeededRandom.U32(ctx.Random) & 0x7FFFFFFF;
        return (r < probability) != invert;
    }

    /// <summary>
    /// The nth mode's step. Apart from <see cref="Match"/> so that the random mode (kube-proxy's, once per endpoint
    /// rule a new connection passes) does not allocate the closure the rule state's factory captures.
    /// </summary>
    private static bool Nth(PacketContext ctx, StatisticData d)
    {
        StatisticState s = ctx.RuleState(() => new StatisticState { Count = d.Count, Initial = d.Count });
        s.Count = s.Count == d.Every ? 0 : s.Count + 1;
        return s.Count == 0;
    }
}

/// <summary>An nth-mode rule's counter (xt_statistic_priv.count).</summary>
public sealed class StatisticState : IRuntimeState
{
    public uint Count;
    public uint Initial;

    public System.Text.Json.Nodes.JsonNode? Save() => Count == Initial ? null : System.Text.Json.Nodes.JsonValue.Create(Count);

    public void Load(System.Text.Json.Nodes.JsonNode node) => Count = (uint)node;
}
