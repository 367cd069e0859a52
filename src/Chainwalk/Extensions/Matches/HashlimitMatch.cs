using System.Text;
using Chainwalk.Engine;
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


    /// <summary>Its checkentry looks beyond the rule: rules naming the same hash table must agree.</summary>

    public override bool ChecksSharedObjects => true;

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

    // ------------------------------------------------------------------ evaluation (xt_hashlimit.c, HZ = 1000)

    /// <summary>CREDITS_PER_JIFFY of revisions 2 and 3: the largest power of two below 2^64 / (HZ·86400) = 2^37.</summary>
    internal const ulong CreditsPerJiffy = 1UL << 37;

    /// <summary>CREDITS_PER_JIFFY_v1 (32-bit credits, as xt_limit).</summary>
    internal const ulong CreditsPerJiffyV1 = 32;

    /// <summary>CREDITS_PER_JIFFY_BYTES: the largest power of two below 2^32 / HZ = 2^22.</summary>
    internal const ulong CreditsPerJiffyBytes = 1UL << 22;

    private const ulong Hz = 1000;
    private const int ByteShift = 4;

    /// <summary>user2credits: a period (1/10000 s in revision 1, 1/1000000 s later) in credits, constants divided first.</summary>
    internal static ulong Credits(ulong user, int revision)
    {
        ulong scale = revision == 1 ? 10000UL : ScaleV2;
        ulong cpj = revision == 1 ? CreditsPerJiffyV1 : CreditsPerJiffy;
        if (scale >= Hz * cpj) return user / (scale / (Hz * cpj));
        return unchecked(user * (Hz * cpj / scale));
    }

    /// <summary>user2credits_byte.</summary>
    internal static uint ByteCredits(uint user) => (uint)(((ulong)user * (Hz * CreditsPerJiffyBytes)) >> 32);

    /// <summary>
    /// hashlimit_mt_common: the packet's key (masked addresses and ports as --hashlimit-mode says) selects a
    /// bucket in the named table (per family); a new bucket starts full. Packet mode: cost user2credits(avg)
    /// from a cap of user2credits(avg·burst), refilled per jiffy. Byte mode: cost per 16-byte chunk, the
    /// credit refills to one second's worth, and --hashlimit-burst gives that many extra refills. Rate
    /// match (revision 3): counts packets or bytes per interval and compares with the previous window.
    /// Matches below the limit (--hashlimit-upto), above it with --hashlimit-above. Idle buckets expire
    /// after --hashlimit-htable-expire ms, removed by the garbage collector every gcinterval ms.
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Keys4 = new(StringComparer.Ordinal), Keys6 = new(StringComparer.Ordinal);

    protected override bool Match(PacketContext ctx, HashlimitData d)
    {
        int revision = d.Revision == 1 ? 1 : 3;
        string tableKey = (ctx.Family == IpFamily.V4 ? Keys4 : Keys6).GetOrAdd(d.TableName, ctx.Family == IpFamily.V4 ? static n => "hashlimit:4:" + n : static n => "hashlimit:6:" + n);
        HashlimitTable t = ctx.State.Get(tableKey, static () => new HashlimitTable());
        long now = LimitMatch.Jiffies(ctx.Now);
        t.Restore(d);
        t.Prepare(d, now);
        HashlimitData cfg = t.Config!;
        if (!Key(ctx, cfg, out HashlimitKey key))
        {
            ctx.HotDrop = true;
            return false;
        }
        t.Collect(now);
        ulong expire = cfg.Expire; // ms = jiffies at HZ 1000
        if (!t.Buckets.TryGetValue(key, out HashlimitBucket? b))
        {
            if (cfg.Max != 0 && t.Buckets.Count >= cfg.Max || t.Buckets.Count >= HashlimitTable.DefaultMax && cfg.Max == 0)
            {
                // dsthash_alloc_init: "max count of N reached" and the packet is dropped.
                ctx.HotDrop = true;
                return false;
            }
            b = new HashlimitBucket();
            t.Buckets[key] = b;
            b.Expires = now + (long)expire;
            Init(b, cfg, revision, now);
        }
        else
        {
            b.Expires = now + (long)expire;
            Recalc(b, cfg, revision, now);
        }
        bool invert = (d.Mode & HashlimitMode.Invert) != 0;
        if ((d.Mode & HashlimitMode.RateMatch) != 0)
        {
            b.CurrentRate += (d.Mode & HashlimitMode.Bytes) != 0 ? (ulong)ctx.Skb.Length : 1;
            return !b.PrevWindow && b.CurrentRate <= b.Burst ? !invert : invert;
        }
        ulong cost = (d.Mode & HashlimitMode.Bytes) != 0 ? ByteCost((uint)ctx.Skb.Length, b) : b.Cost;
        if (b.Credit >= cost)
        {
            b.Credit -= cost;
            return !invert;
        }
        return invert;
    }

    private static void Init(HashlimitBucket b, HashlimitData cfg, int revision, long now)
    {
        b.Prev = now;
        if (revision >= 3 && (cfg.Mode & HashlimitMode.RateMatch) != 0)
        {
            b.PrevWindow = false;
            b.CurrentRate = 0;
            if ((cfg.Mode & HashlimitMode.Bytes) != 0)
            {
                uint user = (uint)cfg.Avg;
                ulong r = user != 0 ? uint.MaxValue / user : uint.MaxValue;
                b.Rate = (r - 1) << ByteShift;
                b.Burst = cfg.Burst != 0 ? cfg.Burst * b.Rate : b.Rate;
            }
            else
            {
                b.Rate = cfg.Avg != 0 ? ScaleV2 / cfg.Avg : 0;
                b.Burst = cfg.Burst + b.Rate;
            }
            b.Interval = cfg.Interval;
        }
        else if ((cfg.Mode & HashlimitMode.Bytes) != 0)
        {
            b.Credit = CreditsPerJiffyBytes * Hz;
            b.Cost = ByteCredits((uint)cfg.Avg);
            b.CreditCap = cfg.Burst;
        }
        else
        {
            b.Credit = Credits(unchecked(cfg.Avg * cfg.Burst), revision);
            b.Cost = Credits(cfg.Avg, revision);
            b.CreditCap = b.Credit;
        }
    }

    private static void Recalc(HashlimitBucket b, HashlimitData cfg, int revision, long now)
    {
        ulong delta = unchecked((ulong)(now - b.Prev));
        if (delta == 0) return;
        if (revision >= 3 && (cfg.Mode & HashlimitMode.RateMatch) != 0)
        {
            ulong interval = b.Interval * Hz;
            if (delta < interval) return;
            b.Prev = now;
            b.PrevWindow = b.CurrentRate * interval > delta * b.Rate;
            b.CurrentRate = 0;
            return;
        }
        b.Prev = now;
        ulong cap;
        if ((cfg.Mode & HashlimitMode.Bytes) != 0)
        {
            ulong before = b.Credit;
            b.Credit = unchecked(b.Credit + CreditsPerJiffyBytes * delta);
            cap = CreditsPerJiffyBytes * Hz;
            if (before >= b.Credit)
            {
                b.Credit = cap;
                return;
            }
        }
        else
        {
            b.Credit = unchecked(b.Credit + delta * (revision == 1 ? CreditsPerJiffyV1 : CreditsPerJiffy));
            cap = b.CreditCap;
        }
        if (b.Credit > cap) b.Credit = cap;
    }

    /// <summary>hashlimit_byte_cost: 16-byte chunks times the cost, at most a second's credit; an empty bucket spends one burst refill.</summary>
    private static ulong ByteCost(uint len, HashlimitBucket b)
    {
        ulong tmp = ((ulong)(len >> ByteShift) + 1) * b.Cost;
        if (tmp > CreditsPerJiffyBytes * Hz) tmp = CreditsPerJiffyBytes * Hz;
        if (b.Credit < tmp && b.CreditCap != 0)
        {
            b.CreditCap--;
            b.Credit = CreditsPerJiffyBytes * Hz;
        }
        return (uint)tmp;
    }

    /// <summary>hashlimit_init_dst: the masked addresses and the ports the mode asks for; false when the ports cannot be read.</summary>
    private static bool Key(PacketContext ctx, HashlimitData cfg, out HashlimitKey key)
    {
        Wire.Packet p = ctx.Packet;
        int bits = ctx.Family == IpFamily.V4 ? 32 : 128;
        UInt128 src = (cfg.Mode & HashlimitMode.SrcIp) != 0 ? p.Source & PrefixMask(cfg.SrcMask, bits) : UInt128.Zero;
        UInt128 dst = (cfg.Mode & HashlimitMode.DstIp) != 0 ? p.Destination & PrefixMask(cfg.DstMask, bits) : UInt128.Zero;
        ushort sport = 0, dport = 0;
        if ((cfg.Mode & (HashlimitMode.SrcPort | HashlimitMode.DstPort)) != 0)
        {
            int poff = p.Protocol switch
            {
                6 or 17 or 33 or 50 or 132 or 136 => 0,
                51 => 4,
                _ => -1,
            };
            if (poff >= 0)
            {
                int at = p.TransportOffset + poff;
                if (at + 4 > p.TotalLength || at + 4 > p.Bytes.Length)
                {
                    key = default;
                    return false;
                }
                if ((cfg.Mode & HashlimitMode.SrcPort) != 0) sport = (ushort)((p.Bytes[at] << 8) | p.Bytes[at + 1]);
                if ((cfg.Mode & HashlimitMode.DstPort) != 0) dport = (ushort)((p.Bytes[at + 2] << 8) | p.Bytes[at + 3]);
            }
        }
        key = new HashlimitKey(src, dst, sport, dport);
        return true;
    }

    /// <summary>The mask of a prefix length within an address of <paramref name="bits"/> bits (0 → all zero, as maskl does).</summary>
    private static UInt128 PrefixMask(uint len, int bits)
    {
        if (len == 0) return UInt128.Zero;
        UInt128 all = bits == 32 ? (UInt128)uint.MaxValue : UInt128.MaxValue;
        return (all << (bits - (int)len)) & all;
    }
}

/// <summary>What a hashlimit bucket is keyed by (struct dsthash_dst).</summary>
public readonly record struct HashlimitKey(UInt128 Source, UInt128 Destination, ushort SourcePort, ushort DestinationPort);

/// <summary>One bucket (struct dsthash_ent's rateinfo) and its expiry jiffy.</summary>
public sealed class HashlimitBucket
{
    public long Prev;
    public long Expires;
    public ulong Credit;
    public ulong CreditCap;
    public ulong Cost;

    // Rate-match mode.
    public ulong CurrentRate;
    public ulong Rate;
    public ulong Burst;
    public ulong Interval;
    public bool PrevWindow;
}

/// <summary>
/// A named hashlimit table (/proc/net/ipt_hashlimit/NAME): its configuration is that of the rule that
/// created it; buckets by key; the garbage collector runs every gcinterval ms from the table's creation.
/// </summary>
public sealed class HashlimitTable : IRuntimeState
{
    /// <summary>The default size on a host with more than 1 GiB of memory (8192 buckets) times 8: the default --hashlimit-htable-max.</summary>
    public const int DefaultMax = 8192 * 8;

    public HashlimitData? Config { get; private set; }

    public long Created { get; private set; }

    public Dictionary<HashlimitKey, HashlimitBucket> Buckets { get; } = new();

    private long _lastGc;

    public void Prepare(HashlimitData d, long now)
    {
        if (Config is not null) return;
        Config = (HashlimitData)d.Clone();
        Created = now;
        _lastGc = now;
    }

    /// <summary>htable_gc: passes at Created + k·gcinterval up to now remove every bucket expired by then.</summary>
    public void Collect(long now)
    {
        long gc = Math.Max(1, (long)Config!.GcInterval);
        long lastPass = Created + (now - Created) / gc * gc;
        if (lastPass <= _lastGc) return;
        _lastGc = lastPass;
        List<HashlimitKey>? gone = null;
        foreach (var kv in Buckets)
        {
            // Expired at some pass between the previous one and the last: that pass removed it.
            if (kv.Value.Expires <= lastPass) (gone ??= new()).Add(kv.Key);
        }
        if (gone is null) return;
        foreach (HashlimitKey k in gone) Buckets.Remove(k);
    }

    public System.Text.Json.Nodes.JsonNode? Save()
    {
        if (Config is null) return null;
        var list = new System.Text.Json.Nodes.JsonArray();
        foreach (var kv in Buckets)
        {
            HashlimitBucket b = kv.Value;
            list.Add(new System.Text.Json.Nodes.JsonArray(
                kv.Key.Source.ToString(System.Globalization.CultureInfo.InvariantCulture),
                kv.Key.Destination.ToString(System.Globalization.CultureInfo.InvariantCulture),
                kv.Key.SourcePort, kv.Key.DestinationPort, b.Prev, b.Expires, b.Credit, b.CreditCap, b.Cost,
                b.CurrentRate, b.Rate, b.Burst, b.Interval, b.PrevWindow));
        }
        return new System.Text.Json.Nodes.JsonObject { ["created"] = Created, ["lastGc"] = _lastGc, ["buckets"] = list };
    }

    public void Load(System.Text.Json.Nodes.JsonNode node)
    {
        _pending = node;
    }

    private System.Text.Json.Nodes.JsonNode? _pending;

    /// <summary>Restores saved buckets once the configuration is known (the first packet after loading).</summary>
    public void Restore(HashlimitData d)
    {
        if (_pending is not { } node) return;
        _pending = null;
        Config = (HashlimitData)d.Clone();
        Created = (long)node["created"]!;
        _lastGc = (long)node["lastGc"]!;
        foreach (System.Text.Json.Nodes.JsonNode? n in node["buckets"]!.AsArray())
        {
            if (n is not System.Text.Json.Nodes.JsonArray a) continue;
            var key = new HashlimitKey(UInt128.Parse((string)a[0]!, System.Globalization.CultureInfo.InvariantCulture),
                UInt128.Parse((string)a[1]!, System.Globalization.CultureInfo.InvariantCulture), (ushort)a[2]!, (ushort)a[3]!);
            Buckets[key] = new HashlimitBucket
            {
                Prev = (long)a[4]!, Expires = (long)a[5]!, Credit = (ulong)a[6]!, CreditCap = (ulong)a[7]!, Cost = (ulong)a[8]!,
                CurrentRate = (ulong)a[9]!, Rate = (ulong)a[10]!, Burst = (ulong)a[11]!, Interval = (ulong)a[12]!, PrevWindow = (bool)a[13]!,
            };
        }
    }
}
