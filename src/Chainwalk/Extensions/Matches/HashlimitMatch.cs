using System.Text;
using Chainwalk.Net;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Matches;

/// <summary>The XT_HASHLIMIT_* mode bits of <c>-m hashlimit</c>.</summary>
[Flags]
public enum HashlimitMode : uint
{
    None = 0,
    DstIp = 1,
    DstPort = 2,
    SrcIp = 4,
    SrcPort = 8,
    Invert = 16,
    Bytes = 32,
    RateMatch = 64,
}

/// <summary>Options of <c>-m hashlimit</c> (struct xt_hashlimit_mtinfo3 / hashlimit_cfg3).</summary>
public sealed class HashlimitData : ExtensionData
{
    public HashlimitMode Mode;

    /// <summary>Packet mode: period per packet in 1/1000000 s; byte mode: the cost per byte unit.</summary>
    public ulong Avg;

    /// <summary>Packet mode: packets; byte mode: multiples of the byte cost (0 = none given).</summary>
    public ulong Burst = HashlimitMatch.DefaultBurst;

    public uint Size;
    public uint Max;
    public uint GcInterval = HashlimitMatch.DefaultGcInterval;

    /// <summary>Idle entry expiry in milliseconds.</summary>
    public uint Expire;

    public uint SrcMask;
    public uint DstMask;

    /// <summary>Rate-match interval in seconds (revision 3).</summary>
    public uint Interval;

    /// <summary>The hash table name (at most 15 characters).</summary>
    public string TableName = string.Empty;

    /// <summary>The rate unit's seconds (1, 60, 3600, 86400; 15 for byte rates), used for defaults only.</summary>
    public uint UnitMult = 1;
}

/// <summary><c>-m hashlimit</c> revision 3 (libxt_hashlimit.c, xt_hashlimit.c).</summary>
public sealed class HashlimitMatch : XtExtension<HashlimitData>
{
    private const int OUpto = 0, OAbove = 1, OLimit = 2, OMode = 3, OSrcMask = 4, ODstMask = 5, OName = 6, OBurst = 7,
        OSize = 8, OMax = 9, OGcInt = 10, OExpire = 11, ORateMatch = 12, OInterval = 13;

    internal const ulong DefaultBurst = 5;
    internal const uint DefaultGcInterval = 1000;
    private const ulong BurstMax = 1000000;
    private const ulong ScaleV2 = 1000000;
    private const uint ByteExpire = 15;
    private const uint ByteExpireBurst = 60;

    public override string Name => "hashlimit";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("hashlimit-upto", OUpto, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OAbove },
        new("hashlimit-above", OAbove, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OUpto },
        new("hashlimit", OUpto, OptionArg.Required, OptFlags.Invert) { Excludes = 1 << OAbove },
        new("hashlimit-srcmask", OSrcMask),
        new("hashlimit-dstmask", ODstMask),
        new("hashlimit-burst", OBurst),
        new("hashlimit-htable-size", OSize),
        new("hashlimit-htable-max", OMax),
        new("hashlimit-htable-gcinterval", OGcInt),
        new("hashlimit-htable-expire", OExpire),
        new("hashlimit-mode", OMode),
        new("hashlimit-name", OName, OptionArg.Required, OptFlags.Mandatory),
        new("hashlimit-rate-match", ORateMatch, OptionArg.None),
        new("hashlimit-rate-interval", OInterval),
    ];

    protected override void Init(ParseContext ctx, HashlimitData d)
    {
        uint full = ctx.Family == IpFamily.V4 ? 32u : 128u;
        d.SrcMask = full;
        d.DstMask = full;
    }

    private static XtablesException BadValue(ParseContext ctx, string option, string value) =>
        ctx.Error($"hashlimit: Bad value for \"{option}\" option: \"{value}\"");

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, HashlimitData d)
    {
        string arg = argument ?? string.Empty;
        switch (option.Id)
        {
            case OBurst:
                d.Burst = ParseBurst(ctx, arg);
                break;
            case OUpto:
            case OAbove:
                if ((option.Id == OUpto) == invert) d.Mode |= HashlimitMode.Invert;
                if (TryParseBytes(ctx, arg, d)) d.Mode |= HashlimitMode.Bytes;
                else if (!TryParseRate(ctx, arg, d)) throw BadValue(ctx, option.Id == OUpto ? "--hashlimit-upto" : "--hashlimit-above", arg);
                break;
            case OMode:
                foreach (string tok in arg.Split([',', '|'], StringSplitOptions.RemoveEmptyEntries))
                {
                    d.Mode |= tok switch
                    {
                        "dstip" => HashlimitMode.DstIp,
                        "srcip" => HashlimitMode.SrcIp,
                        "srcport" => HashlimitMode.SrcPort,
                        "dstport" => HashlimitMode.DstPort,
                        _ => throw BadValue(ctx, "--hashlimit-mode", arg),
                    };
                }
                break;
            case OSrcMask:
                d.SrcMask = ParseMaskLength(ctx, arg, option.Name);
                break;
            case ODstMask:
                d.DstMask = ParseMaskLength(ctx, arg, option.Name);
                break;
            case OName:
                if (arg.Length < 1) throw ctx.Error("Argument must have a minimum length of 1 characters\n");
                d.TableName = arg;
                break;
            // The kernel caps both at HASHLIMIT_MAX_SIZE, and that is what reads back.
            case OSize: d.Size = Math.Min((uint)XtParse.UIntBad(arg, 0, uint.MaxValue, Name, option.Name), MaxSize); break;
            case OMax: d.Max = Math.Min((uint)XtParse.UIntBad(arg, 0, uint.MaxValue, Name, option.Name), MaxSize); break;
            case OGcInt: d.GcInterval = (uint)XtParse.UIntBad(arg, 0, uint.MaxValue, Name, option.Name); break;
            case OExpire: d.Expire = (uint)XtParse.UIntBad(arg, 0, uint.MaxValue, Name, option.Name); break;
            case ORateMatch: d.Mode |= HashlimitMode.RateMatch; break;
            case OInterval:
                {
                    int r = XtParse.Atoi(arg);
                    if (r <= 0) throw BadValue(ctx, "--hashlimit-rate-interval", arg);
                    d.Interval = (uint)r;
                    break;
                }
        }
    }

    private const uint MaxSize = 1048576;

    private uint ParseMaskLength(ParseContext ctx, string arg, string option) =>
        (uint)XtParse.PrefixOrMask(arg, ctx.Family, Name, option);

    private static ulong Factor(char c) => c switch { 'm' => 1024 * 1024, 'k' => 1024, _ => 1 };

    private static XtablesException BurstError(ParseContext ctx) =>
        ctx.Error($"bad value for option \"--hashlimit-burst\", or out of range (1-{BurstMax}).");

    private static ulong ParseBurst(ParseContext ctx, string text)
    {
        int used = NumberParsing.ParseCPrefix(text, 0, out ulong v, out bool overflow);
        if (used == 0 || overflow || v < 1) throw BurstError(ctx);
        if (used == text.Length && v > BurstMax) throw BurstError(ctx);
        char next = used < text.Length ? text[used] : '\0';
        ulong f = Factor(next);
        if (v > ulong.MaxValue / f)
            throw ctx.Error($"bad value for option \"--hashlimit-burst\", value \"{text}\" too large (max {ulong.MaxValue / 1024 / 1024}mb).");
        return v * f;
    }

    private static long Atoll(string text)
    {
        int i = 0;
        while (i < text.Length && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r'))) i++;
        bool neg = false;
        if (i < text.Length && (text[i] is '+' or '-'))
        {
            neg = text[i] == '-';
            i++;
        }
        long acc = 0;
        while (i < text.Length && char.IsAsciiDigit(text[i]))
        {
            int dgt = text[i] - '0';
            acc = acc > (long.MaxValue - dgt) / 10 ? long.MaxValue : acc * 10 + dgt;
            i++;
        }
        return neg ? -acc : acc;
    }

    internal static ulong CostToBytes(ulong cost)
    {
        ulong r = cost != 0 ? uint.MaxValue / cost : uint.MaxValue;
        return (r - 1) << 4;
    }

    internal static ulong BytesToCost(ulong bytes)
    {
        uint r = unchecked((uint)(bytes >> 4));
        return uint.MaxValue / ((ulong)r + 1);
    }

    private static bool TryParseBytes(ParseContext ctx, string rate, HashlimitData d)
    {
        int at = rate.IndexOf("b/s", StringComparison.Ordinal);
        if (at <= 0) return false;
        ulong r = unchecked((ulong)Atoll(rate));
        if (r == 0) return false;
        ulong factor = Factor(rate[at - 1]);
        ulong tmp = unchecked(r * factor);
        tmp = BytesToCost(tmp);
        if (tmp == 0) throw ctx.Error($"Rate too high \"{rate}\"");
        d.UnitMult = ByteExpire;
        d.Avg = tmp;
        return true;
    }

    private static bool TryParseRate(ParseContext ctx, string rate, HashlimitData d)
    {
        d.UnitMult = 1;
        int slash = rate.IndexOf('/', StringComparison.Ordinal);
        if (slash >= 0)
        {
            string unit = rate[(slash + 1)..];
            if (unit.Length == 0) return false;
            if (IsPrefix(unit, "second")) d.UnitMult = 1;
            else if (IsPrefix(unit, "minute")) d.UnitMult = 60;
            else if (IsPrefix(unit, "hour")) d.UnitMult = 3600;
            else if (IsPrefix(unit, "day")) d.UnitMult = 86400;
            else return false;
        }
        ulong r = unchecked((ulong)Atoll(rate));
        if (r == 0) return false;
        ulong tmp = ScaleV2 * d.UnitMult / r;
        if (tmp == 0) throw ctx.Error($"Rate too fast \"{rate}\"");
        d.Avg = tmp;
        return true;
    }

    private static bool IsPrefix(string given, string full) =>
        given.Length <= full.Length && string.Compare(given, 0, full, 0, given.Length, StringComparison.OrdinalIgnoreCase) == 0;

    protected override void FinalCheck(ParseContext ctx, HashlimitData d)
    {
        if ((d.Given & ((1 << OUpto) | (1 << OAbove))) == 0) throw ctx.Error("You have to specify --hashlimit");
        bool expireGiven = (d.Given & (1 << OExpire)) != 0;
        if (!expireGiven) d.Expire = d.UnitMult * 1000;
        if ((d.Mode & HashlimitMode.Bytes) != 0)
        {
            ulong burst = 0;
            if ((d.Given & (1 << OBurst)) != 0)
            {
                ulong unit = CostToBytes(d.Avg);
                if (d.Burst < unit) throw ctx.Error($"burst cannot be smaller than {unit}b");
                burst = (uint)d.Burst;
                burst = unchecked((uint)(burst / unit));
                if (d.Burst % unit != 0) burst = unchecked((uint)(burst + 1));
                if (!expireGiven) d.Expire = ByteExpireBurst * 1000;
            }
            d.Burst = burst;
        }
        else if (d.Burst > BurstMax)
        {
            throw BurstError(ctx);
        }
        if ((d.Given & (1 << ORateMatch)) != 0)
        {
            if ((d.Mode & HashlimitMode.Bytes) == 0) d.Avg /= d.UnitMult;
            if (d.Interval == 0) d.Interval = (d.Mode & HashlimitMode.Bytes) != 0 ? 1 : d.UnitMult;
        }
    }

    /// <summary>hashlimit_mt_check_common: timers must be non-zero; a rate-match rate must fit 32 bits.</summary>
    protected override string? CheckEntry(Chainwalk.Extensions.RuleCheckContext ctx, HashlimitData d)
    {
        if ((d.Mode & HashlimitMode.RateMatch) != 0 && (d.Avg == 0 || d.Avg > uint.MaxValue)) return "Numerical result out of range";
        if ((d.Mode & HashlimitMode.Bytes) == 0 && (d.Mode & HashlimitMode.RateMatch) == 0
            && (d.Burst == 0 || UserToCredits(unchecked(d.Avg * d.Burst)) < UserToCredits(d.Avg)))
            return "Numerical result out of range";
        if (d.GcInterval == 0 || d.Expire == 0) return Chainwalk.Rules.RulesetEditor.InvalidArgument;
        uint maxMask = ctx.Family == IpFamily.V4 ? 32u : 128u;
        if (d.SrcMask > maxMask || d.DstMask > maxMask) return Chainwalk.Rules.RulesetEditor.InvalidArgument;
        // One hash table per name: a rule that wants it with the other rate-match setting is refused.
        foreach (Chainwalk.Rules.Rule r in ctx.TableRules)
        {
            foreach (Chainwalk.Rules.MatchUse m in r.Matches)
            {
                if (m.Data is HashlimitData other && !ReferenceEquals(other, d) && other.TableName == d.TableName
                    && ((other.Mode ^ d.Mode) & HashlimitMode.RateMatch) != 0)
                    return Chainwalk.Rules.RulesetEditor.InvalidArgument;
            }
        }
        return null;
    }

    /// <summary>HZ * CREDITS_PER_JIFFY of the kernel (HZ 250: 250 * 128).</summary>
    private const ulong CreditsPerSecond = 32000;

    /// <summary>user2credits for revision 2+: credits of a period, cut to 32 bits as the kernel's u32 result is.</summary>
    private static uint UserToCredits(ulong user)
    {
        if (user > ulong.MaxValue / CreditsPerSecond) return unchecked((uint)(user / ScaleV2 * CreditsPerSecond));
        return unchecked((uint)(user * CreditsPerSecond / ScaleV2));
    }

    private static readonly (string Name, ulong Mult)[] Rates =
        [("day", ScaleV2 * 86400), ("hour", ScaleV2 * 3600), ("min", ScaleV2 * 60), ("sec", ScaleV2)];

    private static uint AppendRate(StringBuilder sb, ulong period)
    {
        if (period == 0)
        {
            sb.Append(" inf");
            return 0;
        }
        int i;
        for (i = 1; i < Rates.Length; i++)
        {
            if (period > Rates[i].Mult || Rates[i].Mult / period < Rates[i].Mult % period) break;
        }
        sb.Append(' ').Append(XtParse.Dec(Rates[i - 1].Mult / period)).Append('/').Append(Rates[i - 1].Name);
        return (uint)(Rates[i - 1].Mult / ScaleV2 * 1000);
    }

    private static readonly (string Name, ulong Thresh)[] Units = [("m", 1024 * 1024), ("k", 1024), (string.Empty, 1)];

    private static uint AppendBytes(StringBuilder sb, ulong avg, ulong burst, string prefix)
    {
        ulong r = CostToBytes(avg);
        int i;
        for (i = 0; i < Units.Length - 1; i++)
        {
            if (r >= Units[i].Thresh && BytesToCost(r & ~(Units[i].Thresh - 1)) == avg) break;
        }
        sb.Append(' ').Append(XtParse.Dec(r / Units[i].Thresh)).Append(Units[i].Name).Append("b/s");
        if (burst == 0) return ByteExpire * 1000;
        r = unchecked(r * burst);
        sb.Append(' ').Append(prefix);
        for (i = 0; i < Units.Length - 1; i++)
        {
            if (r >= Units[i].Thresh) break;
        }
        sb.Append("burst ").Append(XtParse.Dec(r / Units[i].Thresh)).Append(Units[i].Name).Append('b');
        return ByteExpireBurst * 1000;
    }

    private static void AppendMode(StringBuilder sb, HashlimitMode mode, char sep)
    {
        sb.Append(' ');
        bool prev = false;
        foreach (var (flag, name) in new[] { (HashlimitMode.SrcIp, "srcip"), (HashlimitMode.SrcPort, "srcport"), (HashlimitMode.DstIp, "dstip"), (HashlimitMode.DstPort, "dstport") })
        {
            if ((mode & flag) == 0) continue;
            if (prev) sb.Append(sep);
            sb.Append(name);
            prev = true;
        }
    }

    private const HashlimitMode HashBits = HashlimitMode.SrcIp | HashlimitMode.SrcPort | HashlimitMode.DstIp | HashlimitMode.DstPort;

    protected override void Save(StringBuilder sb, HashlimitData d, IpFamily family)
    {
        byte dmask = (byte)(family == IpFamily.V4 ? 32 : 128);
        sb.Append((d.Mode & HashlimitMode.Invert) != 0 ? " --hashlimit-above" : " --hashlimit-upto");
        uint quantum;
        if ((d.Mode & HashlimitMode.Bytes) != 0)
        {
            quantum = AppendBytes(sb, d.Avg, d.Burst, "--hashlimit-");
        }
        else
        {
            quantum = AppendRate(sb, d.Avg);
            sb.Append(" --hashlimit-burst ").Append(XtParse.Dec(d.Burst));
        }
        if ((d.Mode & HashBits) != 0)
        {
            sb.Append(" --hashlimit-mode");
            AppendMode(sb, d.Mode, ',');
        }
        sb.Append(" --hashlimit-name ").Append(d.TableName);
        if (d.Size != 0) sb.Append(" --hashlimit-htable-size ").Append(XtParse.Dec(d.Size));
        if (d.Max != 0) sb.Append(" --hashlimit-htable-max ").Append(XtParse.Dec(d.Max));
        if (d.GcInterval != DefaultGcInterval) sb.Append(" --hashlimit-htable-gcinterval ").Append(XtParse.Dec(d.GcInterval));
        if (d.Expire != quantum) sb.Append(" --hashlimit-htable-expire ").Append(XtParse.Dec(d.Expire));
        if (d.SrcMask != dmask) sb.Append(" --hashlimit-srcmask ").Append(XtParse.Dec(d.SrcMask));
        if (d.DstMask != dmask) sb.Append(" --hashlimit-dstmask ").Append(XtParse.Dec(d.DstMask));
        if ((d.Mode & HashlimitMode.RateMatch) != 0)
        {
            sb.Append(" --hashlimit-rate-match");
            if (d.Interval != 1) sb.Append(" --hashlimit-rate-interval ").Append(XtParse.Dec(d.Interval));
        }
    }

    protected override void Print(StringBuilder sb, HashlimitData d, IpFamily family, bool numeric)
    {
        byte dmask = (byte)(family == IpFamily.V4 ? 32 : 128);
        sb.Append((d.Mode & HashlimitMode.Invert) != 0 ? " limit: above" : " limit: up to");
        uint quantum;
        if ((d.Mode & HashlimitMode.Bytes) != 0)
        {
            quantum = AppendBytes(sb, d.Avg, d.Burst, string.Empty);
        }
        else
        {
            ulong period = d.Avg;
            if (d.Interval != 0) period = unchecked(period * d.Interval);
            quantum = AppendRate(sb, period);
            sb.Append(" burst ").Append(XtParse.Dec(d.Burst));
        }
        if ((d.Mode & HashBits) != 0)
        {
            sb.Append(" mode");
            AppendMode(sb, d.Mode, '-');
        }
        if (d.Size != 0) sb.Append(" htable-size ").Append(XtParse.Dec(d.Size));
        if (d.Max != 0) sb.Append(" htable-max ").Append(XtParse.Dec(d.Max));
        if (d.GcInterval != DefaultGcInterval) sb.Append(" htable-gcinterval ").Append(XtParse.Dec(d.GcInterval));
        if (d.Expire != quantum) sb.Append(" htable-expire ").Append(XtParse.Dec(d.Expire));
        if (d.SrcMask != dmask) sb.Append(" srcmask ").Append(XtParse.Dec(d.SrcMask));
        if (d.DstMask != dmask) sb.Append(" dstmask ").Append(XtParse.Dec(d.DstMask));
        if ((d.Mode & HashlimitMode.RateMatch) != 0)
        {
            sb.Append(" rate-match");
            if (d.Interval != 1) sb.Append(" rate-interval ").Append(XtParse.Dec(d.Interval));
        }
    }
}
