using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>The XT_RATEEST_MATCH_* flags.</summary>
[Flags]
public enum RateestFlags : ushort
{
    None = 0,
    Invert = 1,
    Abs = 2,
    Rel = 4,
    Delta = 8,
    Bps = 16,
    Pps = 32,
}

/// <summary>Comparison of <c>-m rateest</c> (XT_RATEEST_MATCH_*).</summary>
public enum RateestMode : byte
{
    None = 0,
    Lt = 1,
    Gt = 2,
    Eq = 3,
}

/// <summary>Options of <c>-m rateest</c> (struct xt_rateest_match_info).</summary>
public sealed class RateestData : ExtensionData
{
    public string Name1 = string.Empty;
    public string Name2 = string.Empty;
    public RateestFlags Flags;
    public RateestMode Mode;

    /// <summary>Rates in bytes per second.</summary>
    public uint Bps1, Bps2;

    public uint Pps1, Pps2;
}

/// <summary>
/// <c>-m rateest</c> (libxt_rateest.c, xt_rateest.c). The kernel refuses the rule (ENOENT) unless the named
/// estimators exist; they come from RATEEST target rules (<see cref="KernelObjects.RateEstimators"/>).
/// </summary>
public sealed class RateestMatch : XtExtension<RateestData>
{
    private const int O1 = 0, O2 = 1, OBps1 = 2, OPps1 = 3, OBps2 = 4, OPps2 = 5, ODelta = 6, OLt = 7, OGt = 8, OEq = 9;

    public override string Name => "rateest";

    public override ExtensionKind Kind => ExtensionKind.Match;


    /// <summary>Its checkentry looks beyond the rule: its estimators are named by RATEEST rules of the table or by the host.</summary>

    public override bool ChecksSharedObjects => true;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("rateest1", O1, OptionArg.Required, OptFlags.Manual),
        new("rateest", O1, OptionArg.Required, OptFlags.Manual),
        new("rateest2", O2, OptionArg.Required, OptFlags.Manual),
        new("rateest-bps1", OBps1, OptionArg.None, OptFlags.Manual),
        new("rateest-pps1", OPps1, OptionArg.None, OptFlags.Manual),
        new("rateest-bps2", OBps2, OptionArg.None, OptFlags.Manual),
        new("rateest-pps2", OPps2, OptionArg.None, OptFlags.Manual),
        new("rateest-bps", OBps2, OptionArg.None, OptFlags.Manual),
        new("rateest-pps", OPps2, OptionArg.None, OptFlags.Manual),
        new("rateest-delta", ODelta, OptionArg.None, OptFlags.Manual),
        new("rateest-lt", OLt, OptionArg.None, OptFlags.Manual),
        new("rateest-gt", OGt, OptionArg.None, OptFlags.Manual),
        new("rateest-eq", OEq, OptionArg.None, OptFlags.Manual),
    ];

    private static readonly (string Name, double Scale)[] Suffixes =
    [
        ("bit", 1), ("Kibit", 1024), ("kbit", 1000), ("Mibit", 1024.0 * 1024), ("mbit", 1e6), ("Gibit", 1024.0 * 1024 * 1024),
        ("gbit", 1e9), ("Tibit", 1024.0 * 1024 * 1024 * 1024), ("tbit", 1e12), ("Bps", 8), ("KiBps", 8.0 * 1024), ("KBps", 8000),
        ("MiBps", 8.0 * 1024 * 1024), ("MBps", 8e6), ("GiBps", 8.0 * 1024 * 1024 * 1024), ("GBps", 8e9),
        ("TiBps", 8.0 * 1024 * 1024 * 1024 * 1024), ("TBps", 8e12),
    ];

    private static bool TryRate(string s, out uint rate)
    {
        rate = 0;
        int end = 0;
        while (end < s.Length && (char.IsAsciiDigit(s[end]) || s[end] is '.' or '+' or '-' or 'e' or 'E') ) end++;
        while (end > 0 && !XtParse.TryStrtod(s[..end], out _)) end--;
        if (end == 0 || !XtParse.TryStrtod(s[..end], out double bps)) return false;
        string rest = s[end..];
        if (rest.Length == 0)
        {
            rate = unchecked((uint)(long)(bps / 8.0));
            return true;
        }
        foreach (var (name, scale) in Suffixes)
        {
            if (string.Equals(name, rest, StringComparison.OrdinalIgnoreCase))
            {
                rate = unchecked((uint)(long)(bps * scale / 8.0));
                return true;
            }
        }
        return false;
    }

    private static string? OptionalValue(ParseContext ctx)
    {
        string? next = ctx.PeekArgument();
        if (next is null || next.StartsWith('-') || next.StartsWith('!')) return null;
        return next;
    }

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RateestData d)
    {
        int id = option.Id;
        ulong bit = 1UL << id;
        bool twice = (d.Given & bit) != 0;
        switch (id)
        {
            case O1:
            case O2:
                if (invert) throw ctx.Error("rateest: rateest can't be inverted");
                if (twice) throw ctx.Error($"rateest: can't specify --rateest{(id == O1 ? 1 : 2)} twice");
                if (id == O1) d.Name1 = CommentMatch.Truncate(argument!, 15);
                else
                {
                    d.Name2 = CommentMatch.Truncate(argument!, 15);
                    d.Flags |= RateestFlags.Rel;
                }
                break;
            case OBps1:
            case OBps2:
            case OPps1:
            case OPps2:
                {
                    bool bps = id is OBps1 or OBps2;
                    string which = (bps ? "bps" : "pps") + (id is OBps1 or OPps1 ? "1" : "2");
                    if (invert) throw ctx.Error($"rateest: rateest-{(bps ? "bps" : "pps")} can't be inverted");
                    if (twice) throw ctx.Error($"rateest: can't specify --rateest-{which} twice");
                    d.Flags |= bps ? RateestFlags.Bps : RateestFlags.Pps;
                    string? v = OptionalValue(ctx);
                    if (v is null) break;
                    uint r;
                    if (bps)
                    {
                        if (!TryRate(v, out r)) throw ctx.Error($"rateest: could not parse rate `{v}'");
                    }
                    else
                    {
                        if (!NumberParsing.TryParseCUnsigned(v, uint.MaxValue, out ulong pv)) throw ctx.Error($"rateest: could not parse pps `{v}'");
                        r = (uint)pv;
                    }
                    if (id == OBps1) d.Bps1 = r;
                    else if (id == OBps2) d.Bps2 = r;
                    else if (id == OPps1) d.Pps1 = r;
                    else d.Pps2 = r;
                    ctx.SkipArgument();
                    break;
                }
            case ODelta:
                if (invert) throw ctx.Error("rateest: rateest-delta can't be inverted");
                if (twice) throw ctx.Error("rateest: can't specify --rateest-delta twice");
                d.Flags |= RateestFlags.Delta;
                break;
            default:
                if (twice) throw ctx.Error("rateest: can't specify lt/gt/eq twice");
                d.Mode = id == OLt ? RateestMode.Lt : id == OGt ? RateestMode.Gt : RateestMode.Eq;
                if (invert) d.Flags |= RateestFlags.Invert;
                break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, RateestData d)
    {
        if ((d.Flags & RateestFlags.Rel) == 0) d.Flags |= RateestFlags.Abs;
    }

    /// <summary>xt_rateest_mt_checkentry: the estimators must exist (ENOENT), and a mode is required (EINVAL).</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, RateestData d)
    {
        if (d.Mode == RateestMode.None || (d.Flags & (RateestFlags.Bps | RateestFlags.Pps)) == 0) return RulesetEditor.InvalidArgument;
        if (!Exists(ctx, d.Name1)) return "No such file or directory";
        if ((d.Flags & RateestFlags.Rel) != 0 && !Exists(ctx, d.Name2)) return "No such file or directory";
        return null;
    }

    /// <summary>An estimator exists when a RATEEST rule of the table names it (or the host lists it).</summary>
    private static bool Exists(RuleCheckContext ctx, string name)
    {
        if (KernelObjects.Current.RateEstimators.Contains(name)) return true;
        foreach (Rule r in ctx.TableRules)
        {
            if (r.Target is { Data: Targets.RateestData t } && t.EstimatorName == name) return true;
        }
        return false;
    }

    private static void Rate(StringBuilder sb, uint rate, bool numeric)
    {
        double tmp = rate * 8.0;
        if (numeric) sb.Append(' ').Append(XtParse.Dec(rate));
        else if (tmp >= 1000.0 * 1000000.0) sb.Append(' ').Append((tmp / 1000000.0).ToString("F0", CultureInfo.InvariantCulture)).Append("Mbit");
        else if (tmp >= 1000.0 * 1000.0) sb.Append(' ').Append((tmp / 1000.0).ToString("F0", CultureInfo.InvariantCulture)).Append("Kbit");
        else sb.Append(' ').Append(tmp.ToString("F0", CultureInfo.InvariantCulture)).Append("bit");
    }

    private static void Mode(StringBuilder sb, RateestData d, string prefix)
    {
        if ((d.Flags & RateestFlags.Invert) != 0) sb.Append(" !");
        sb.Append(' ').Append(prefix).Append(d.Mode switch { RateestMode.Eq => "eq", RateestMode.Lt => "lt", _ => "gt" });
    }

    private static void SaveRate(StringBuilder sb, RateestData d, string name, uint r1, uint r2, bool numeric)
    {
        if ((d.Flags & RateestFlags.Delta) != 0)
        {
            sb.Append(" --rateest-").Append(name).Append('1');
            Rate(sb, r1, numeric);
            Mode(sb, d, "--rateest-");
            sb.Append(" --rateest-").Append(name).Append('2');
        }
        else
        {
            Mode(sb, d, "--rateest-");
            sb.Append(" --rateest-").Append(name);
        }
        if ((d.Flags & (RateestFlags.Abs | RateestFlags.Delta)) != 0) Rate(sb, r2, numeric);
    }

    protected override void Save(StringBuilder sb, RateestData d, IpFamily family)
    {
        if ((d.Flags & RateestFlags.Delta) != 0) sb.Append(" --rateest-delta");
        sb.Append((d.Flags & RateestFlags.Rel) != 0 ? " --rateest1 " : " --rateest ").Append(d.Name1);
        if ((d.Flags & RateestFlags.Bps) != 0) SaveRate(sb, d, "bps", d.Bps1, d.Bps2, false);
        if ((d.Flags & RateestFlags.Pps) != 0) SaveRate(sb, d, "pps", d.Pps1, d.Pps2, true);
        if ((d.Flags & RateestFlags.Rel) != 0) sb.Append(" --rateest2 ").Append(d.Name2);
    }

    protected override void Print(StringBuilder sb, RateestData d, IpFamily family, bool numeric)
    {
        sb.Append(" rateest match ").Append(d.Name1);
        bool delta = (d.Flags & RateestFlags.Delta) != 0, abs = (d.Flags & RateestFlags.Abs) != 0;
        if (delta) sb.Append(" delta");
        if ((d.Flags & RateestFlags.Bps) != 0)
        {
            sb.Append(" bps");
            if (delta) Rate(sb, d.Bps1, numeric);
            if (abs)
            {
                Rate(sb, d.Bps2, numeric);
                Mode(sb, d, string.Empty);
            }
        }
        if ((d.Flags & RateestFlags.Pps) != 0)
        {
            sb.Append(" pps");
            if (delta) sb.Append(' ').Append(XtParse.Dec(d.Pps1));
            if (abs)
            {
                Mode(sb, d, string.Empty);
                sb.Append(' ').Append(XtParse.Dec(d.Pps2));
            }
        }
        if ((d.Flags & RateestFlags.Rel) != 0)
        {
            Mode(sb, d, string.Empty);
            sb.Append(' ').Append(d.Name2);
            if ((d.Flags & RateestFlags.Bps) != 0)
            {
                sb.Append(" bps");
                if (delta) Rate(sb, d.Bps2, numeric);
            }
            if ((d.Flags & RateestFlags.Pps) != 0)
            {
                sb.Append(" pps");
                if (delta) sb.Append(' ').Append(XtParse.Dec(d.Pps2));
            }
        }
    }

    /// <summary>
    /// xt_rateest.c: compares the estimator's bytes/s and packets/s with the given values (--rateest-delta:
    /// the given value minus the estimate, floored at 0) or with a second estimator. Estimators are filled by
    /// -j RATEEST; one nothing fed has rates 0 (see <see cref="RateEstimator"/>).
    /// </summary>
    protected override bool Match(PacketContext ctx, RateestData d)
    {
        RateEstimator e1 = ctx.Named("rateest", d.Name1, () => new RateEstimator());
        bool delta = (d.Flags & RateestFlags.Delta) != 0;
        uint bps1 = delta ? (d.Bps1 >= e1.Bps ? d.Bps1 - e1.Bps : 0) : e1.Bps;
        uint pps1 = delta ? (d.Pps1 >= e1.Pps ? d.Pps1 - e1.Pps : 0) : e1.Pps;
        uint bps2, pps2;
        if ((d.Flags & RateestFlags.Abs) != 0)
        {
            bps2 = d.Bps2;
            pps2 = d.Pps2;
        }
        else
        {
            RateEstimator e2 = ctx.Named("rateest", d.Name2, () => new RateEstimator());
            bps2 = delta ? (d.Bps2 >= e2.Bps ? d.Bps2 - e2.Bps : 0) : e2.Bps;
            pps2 = delta ? (d.Pps2 >= e2.Pps ? d.Pps2 - e2.Pps : 0) : e2.Pps;
        }
        bool ret = true;
        bool bps = (d.Flags & RateestFlags.Bps) != 0, pps = (d.Flags & RateestFlags.Pps) != 0;
        switch (d.Mode)
        {
            case RateestMode.Lt:
                if (bps) ret &= bps1 < bps2;
                if (pps) ret &= pps1 < pps2;
                break;
            case RateestMode.Gt:
                if (bps) ret &= bps1 > bps2;
                if (pps) ret &= pps1 > pps2;
                break;
            case RateestMode.Eq:
                if (bps) ret &= bps1 == bps2;
                if (pps) ret &= pps1 == pps2;
                break;
        }
        return ret ^ ((d.Flags & RateestFlags.Invert) != 0);
    }
}

/// <summary>
/// A rate estimator (xt_rateest's gen_estimator) by name: bytes and packets per second. The RATEEST target
/// feeds it; until then, and on a host without traffic, both are 0.
/// </summary>
public sealed class RateEstimator
{
    public uint Bps;
    public uint Pps;
}
