using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>Options of <c>-j RATEEST</c> (struct xt_rateest_target_info), plus the times as given.</summary>
public sealed class RateestData : ExtensionData
{
    /// <summary>The estimator's name, at most 15 bytes.</summary>
    public string EstimatorName = string.Empty;

    /// <summary>The kernel's interval: 2^(Interval+2)/4 seconds, -2..3.</summary>
    public sbyte Interval;

    /// <summary>The kernel's averaging constant (log2 of the time constant in intervals).</summary>
    public byte EwmaLog;

    /// <summary>--rateest-interval in microseconds, as parsed (userspace only).</summary>
    public uint IntervalUs;

    /// <summary>--rateest-ewmalog in microseconds, as parsed (userspace only).</summary>
    public uint EwmaUs;
}

/// <summary>
/// <c>-j RATEEST --rateest-name N --rateest-interval T --rateest-ewmalog T</c> (libxt_RATEEST.c,
/// xt_RATEEST.c): times in s/ms/us (no unit = microseconds), turned into the kernel's interval and
/// ewma_log by the final check, which runs before the mandatory-option check.
/// </summary>
public sealed class RateestTarget : XtExtension<RateestData>
{
    private const int OName = 0, OInterval = 1, OEwmaLog = 2;
    private const double UnitsPerSec = 1000000;

    public override string Name => "RATEEST";

    public override ExtensionKind Kind => ExtensionKind.Target;


    /// <summary>Its checkentry looks beyond the rule: rules naming the same estimator must agree.</summary>

    public override bool ChecksSharedObjects => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("rateest-name", OName, OptionArg.Required, OptFlags.Mandatory),
        new("rateest-interval", OInterval, OptionArg.Required, OptFlags.Mandatory),
        new("rateest-ewmalog", OEwmaLog, OptionArg.Required, OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RateestData d)
    {
        string arg = argument!;
        switch (option.Id)
        {
            case OName:
                d.EstimatorName = XtParse.OptString(arg, size: 16);
                break;
            case OInterval:
                if (!TryTime(arg, out d.IntervalUs)) throw ctx.Error($"RATEEST: bad interval value \"{arg}\"");
                break;
            default:
                if (!TryTime(arg, out d.EwmaUs)) throw ctx.Error($"RATEEST: bad ewmalog value \"{arg}\"");
                break;
        }
    }

    /// <summary>strtod, then an optional unit (s, sec, secs, ms, msec, msecs, us, usec, usecs; any case).</summary>
    private static bool TryTime(string text, out uint time)
    {
        time = 0;
        int used = StrtodPrefix(text, out double t);
        if (used == 0) return false;
        string unit = text[used..];
        if (unit.Length > 0)
        {
            string u = unit.ToLowerInvariant();
            if (u is "s" or "sec" or "secs") t *= UnitsPerSec;
            else if (u is "ms" or "msec" or "msecs") t *= UnitsPerSec / 1000;
            else if (u is "us" or "usec" or "usecs") t *= 1;
            else return false;
        }
        time = t <= 0 || double.IsNaN(t) ? 0 : t >= uint.MaxValue ? uint.MaxValue : (uint)t;
        return true;
    }

    /// <summary>The decimal part strtod accepts: white space, sign, digits, '.', digits, exponent.</summary>
    private static int StrtodPrefix(string s, out double value)
    {
        value = 0;
        int i = 0;
        while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        int start = i;
        if (i < s.Length && (s[i] == '+' || s[i] == '-')) i++;
        int digits = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i])) { i++; digits++; }
        if (i < s.Length && s[i] == '.')
        {
            i++;
            while (i < s.Length && char.IsAsciiDigit(s[i])) { i++; digits++; }
        }
        if (digits == 0) return 0;
        if (i < s.Length && (s[i] == 'e' || s[i] == 'E'))
        {
            int j = i + 1;
            if (j < s.Length && (s[j] == '+' || s[j] == '-')) j++;
            if (j < s.Length && char.IsAsciiDigit(s[j]))
            {
                while (j < s.Length && char.IsAsciiDigit(s[j])) j++;
                i = j;
            }
        }
        value = double.Parse(s.AsSpan(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture);
        return i;
    }

    protected override void FinalCheck(ParseContext ctx, RateestData d)
    {
        int interval;
        for (interval = 0; interval <= 5; interval++)
        {
            if (d.IntervalUs <= (1 << interval) * (UnitsPerSec / 4)) break;
        }
        if (interval > 5) throw ctx.Error("RATEEST: interval value is too large");
        d.Interval = (sbyte)(interval - 2);
        int ewma;
        for (ewma = 1; ewma < 32; ewma++)
        {
            double w = 1.0 - (1.0 / (1L << ewma));
            if (d.IntervalUs / -Math.Log(w) > d.EwmaUs) break;
        }
        ewma--;
        if (ewma == 0 || ewma >= 31) throw ctx.Error("RATEEST: ewmalog value is out of range");
        d.EwmaLog = (byte)ewma;
    }

    protected override string? CheckEntry(RuleCheckContext ctx, RateestData d)
    {
        // Rules naming the same estimator share it; another interval or ewmalog is refused.
        foreach (Rule r in ctx.TableRules)
        {
            if (r.Target is not { Extension: RateestTarget, Data: RateestData other } || other.EstimatorName != d.EstimatorName) continue;
            if (ReferenceEquals(r, ctx.Rule)) break;
            if (other.Interval != d.Interval || other.EwmaLog != d.EwmaLog) return RulesetEditor.InvalidArgument;
            break;
        }
        return null;
    }

    private static void AppendTime(StringBuilder sb, uint time)
    {
        double tmp = time;
        if (tmp >= UnitsPerSec) sb.Append(' ').Append((tmp / UnitsPerSec).ToString("F1", CultureInfo.InvariantCulture)).Append('s');
        else if (tmp >= UnitsPerSec / 1000) sb.Append(' ').Append((tmp / (UnitsPerSec / 1000)).ToString("F1", CultureInfo.InvariantCulture)).Append("ms");
        else sb.Append(' ').Append(time).Append("us");
    }

    private static void Append(StringBuilder sb, RateestData d, string pfx)
    {
        uint interval = (uint)((1000000L << (d.Interval + 2)) / 4);
        uint ewma = unchecked(interval * (1u << d.EwmaLog));
        sb.Append(' ').Append(pfx).Append("name ").Append(d.EstimatorName);
        sb.Append(' ').Append(pfx).Append("interval");
        AppendTime(sb, interval);
        sb.Append(' ').Append(pfx).Append("ewmalog");
        AppendTime(sb, ewma);
    }

    protected override void Save(StringBuilder sb, RateestData d, IpFamily family) => Append(sb, d, "--rateest-");

    protected override void Print(StringBuilder sb, RateestData d, IpFamily family, bool numeric) => Append(sb, d, string.Empty);

    /// <summary>xt_RATEEST.c xt_rateest_tg: the packet is counted into the named estimator (bytes = IP length). The packet continues.</summary>
    protected override Verdict Execute(PacketContext ctx, RateestData data)
    {
        RateEstimator e = ctx.Named("rateest", data.EstimatorName, () => new RateEstimator(data.Interval, data.EwmaLog, ctx.Now));
        e.Add(ctx.Now, (uint)ctx.Skb.Length);
        return Verdict.Continue;
    }
}
