using System.Globalization;
using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m time</c> (struct xt_time_info).</summary>
public sealed class TimeData : ExtensionData
{
    /// <summary>Seconds since the epoch (UTC); 0 = no lower bound.</summary>
    public uint DateStart;

    /// <summary>Seconds since the epoch (UTC); int.MaxValue = no upper bound.</summary>
    public uint DateStop = int.MaxValue;

    /// <summary>Seconds since midnight.</summary>
    public uint DaytimeStart;

    public uint DaytimeStop = TimeMatch.MaxDaytime;

    /// <summary>Bit i = day i of the month (1-31).</summary>
    public uint MonthDays = TimeMatch.AllMonthDays;

    /// <summary>Bit i = weekday i (1 = Monday … 7 = Sunday).</summary>
    public byte WeekDays = TimeMatch.AllWeekDays;

    /// <summary>--kerneltz (XT_TIME_LOCAL_TZ): the kernel's time zone instead of UTC.</summary>
    public bool KernelTz;

    /// <summary>--contiguous (XT_TIME_CONTIGUOUS).</summary>
    public bool Contiguous;
}

/// <summary><c>-m time</c> (libxt_time.c, xt_time.c).</summary>
public sealed class TimeMatch : XtExtension<TimeData>
{
    private const int ODateStart = 0, ODateStop = 1, OTimeStart = 2, OTimeStop = 3, OContiguous = 4, OMonthdays = 5,
        OWeekdays = 6, OLocalTz = 7, OUtc = 8, OKernelTz = 9;

    internal const uint MaxDaytime = 86399;
    internal const uint AllMonthDays = 0xFFFFFFFE;
    internal const byte AllWeekDays = 0xFE;

    private static readonly string[] WeekDayNames = [string.Empty, "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

    public override string Name => "time";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("datestart", ODateStart),
        new("datestop", ODateStop),
        new("timestart", OTimeStart),
        new("timestop", OTimeStop),
        new("contiguous", OContiguous, OptionArg.None),
        new("weekdays", OWeekdays, OptionArg.Required, OptFlags.Invert),
        new("monthdays", OMonthdays, OptionArg.Required, OptFlags.Invert),
        new("localtz", OLocalTz, OptionArg.None) { Excludes = 1 << OUtc },
        new("utc", OUtc, OptionArg.None) { Excludes = (1 << OLocalTz) | (1 << OKernelTz) },
        new("kerneltz", OKernelTz, OptionArg.None) { Excludes = 1 << OUtc },
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, TimeData d)
    {
        string arg = argument ?? string.Empty;
        switch (option.Id)
        {
            case ODateStart: d.DateStart = ParseDate(ctx, arg); break;
            case ODateStop: d.DateStop = ParseDate(ctx, arg); break;
            case OTimeStart: d.DaytimeStart = ParseDaytime(ctx, arg); break;
            case OTimeStop: d.DaytimeStop = ParseDaytime(ctx, arg); break;
            case OContiguous: d.Contiguous = true; break;
            case OLocalTz:
                ctx.Warn("WARNING: --localtz is being replaced by --kerneltz, since \"local\" is ambiguous. Note the kernel timezone has caveats - see manpage for details.");
                d.KernelTz = true;
                break;
            case OKernelTz: d.KernelTz = true; break;
            case OMonthdays:
                d.MonthDays = ParseMonthDays(ctx, arg);
                if (invert) d.MonthDays ^= AllMonthDays;
                break;
            case OWeekdays:
                {
                    uint w = ParseWeekDays(ctx, arg);
                    if (invert) w ^= AllWeekDays;
                    d.WeekDays = unchecked((byte)w);
                    break;
                }
        }
    }

    /// <summary>strtoul(s, &amp;e, 10): the value and the index after it.</summary>
    private static int Strtoul(string s, int start, int numberBase, out ulong value)
    {
        int used = NumberParsing.ParseCPrefix(s.AsSpan(start), numberBase, out value, out _);
        return start + used;
    }

    private static char At(string s, int i) => i < s.Length ? s[i] : '\0';

    private static uint ParseDate(ParseContext ctx, string os)
    {
        Syntax.XtablesException Bad() =>
            ctx.Error($"Invalid date \"{os}\" specified. Should be YYYY[-MM[-DD[Thh[:mm[:ss]]]]]");
        ulong month = 1, day = 1, hour = 0, minute = 0, second = 0;
        int e = Strtoul(os, 0, 10, out ulong year);
        if ((At(os, e) != '-' && At(os, e) != '\0') || year < 1970 || year > 2038) throw Bad();
        if (At(os, e) != '\0')
        {
            e = Strtoul(os, e + 1, 10, out month);
            if ((At(os, e) != '-' && At(os, e) != '\0') || month > 12) throw Bad();
            if (At(os, e) != '\0')
            {
                e = Strtoul(os, e + 1, 10, out day);
                if ((At(os, e) != 'T' && At(os, e) != '\0') || day > 31) throw Bad();
                if (At(os, e) != '\0')
                {
                    e = Strtoul(os, e + 1, 10, out hour);
                    if ((At(os, e) != ':' && At(os, e) != '\0') || hour > 23) throw Bad();
                    if (At(os, e) != '\0')
                    {
                        e = Strtoul(os, e + 1, 10, out minute);
                        if ((At(os, e) != ':' && At(os, e) != '\0') || minute > 59) throw Bad();
                        if (At(os, e) != '\0')
                        {
                            e = Strtoul(os, e + 1, 10, out second);
                            if (At(os, e) != '\0' || second > 59) throw Bad();
                        }
                    }
                }
            }
        }
        // mktime in UTC, normalising out-of-range fields (day 31 of February is in March).
        DateTime t = new DateTime((int)year, 1, 1, 0, 0, 0, DateTimeKind.Utc)
            .AddMonths((int)month - 1).AddDays((double)day - 1).AddHours(hour).AddMinutes(minute).AddSeconds(second);
        long secs = (long)(t - DateTime.UnixEpoch).TotalSeconds;
        if (secs < 0) throw ctx.Error("mktime returned an error");
        return unchecked((uint)secs);
    }

    private static uint ParseDaytime(ParseContext ctx, string s)
    {
        int e = Strtoul(s, 0, 10, out ulong hour);
        ulong minute = 0, second = 0;
        int segStart = 0;
        bool ok = At(s, e) == ':' && hour <= 23;
        if (ok)
        {
            segStart = e + 1;
            e = Strtoul(s, segStart, 10, out minute);
            ok = (At(s, e) == ':' || At(s, e) == '\0') && minute <= 59;
            if (ok && At(s, e) != '\0')
            {
                segStart = e + 1;
                e = Strtoul(s, segStart, 10, out second);
                ok = At(s, e) == '\0' && second <= 59;
            }
        }
        // The message shows the rest of the text from the segment that failed.
        if (!ok) throw ctx.Error($"invalid time \"{s[segStart..]}\" specified, should be hh:mm[:ss] format and within the boundaries");
        return (uint)(3600 * hour + 60 * minute + second);
    }

    /// <summary>my_strseg: comma-separated pieces, each cut to the buffer (len - 1 characters).</summary>
    private static IEnumerable<string> Segments(string arg, int bufLen)
    {
        if (arg.Length == 0) yield break;
        foreach (string seg in arg.Split(','))
        {
            yield return seg.Length > bufLen - 1 ? seg[..(bufLen - 1)] : seg;
        }
    }

    private static uint ParseMonthDays(ParseContext ctx, string arg)
    {
        uint ret = 0;
        string rest = arg;
        while (rest.Length > 0)
        {
            int comma = rest.IndexOf(',', StringComparison.Ordinal);
            string seg = comma < 0 ? rest : rest[..comma];
            rest = comma < 0 ? string.Empty : rest[(comma + 1)..];
            string day = seg.Length > 2 ? seg[..2] : seg;
            int e = Strtoul(day, 0, 0, out ulong i);
            if ((At(day, e) != ',' && At(day, e) != '\0') || i > 31) throw ctx.Error($"{day} is not a valid day for --monthdays");
            ret |= 1u << (int)i;
        }
        return ret;
    }

    private static uint ParseWeekDays(ParseContext ctx, string arg)
    {
        uint ret = 0;
        string rest = arg;
        while (rest.Length > 0)
        {
            int comma = rest.IndexOf(',', StringComparison.Ordinal);
            string seg = comma < 0 ? rest : rest[..comma];
            rest = comma < 0 ? string.Empty : rest[(comma + 1)..];
            string day = seg.Length > 3 ? seg[..3] : seg;
            int e = Strtoul(day, 0, 0, out ulong i);
            if (At(day, e) == '\0')
            {
                if (i == 0) throw ctx.Error("No, the week does NOT begin with Sunday.");
                ret |= i < 32 ? 1u << (int)i : 0;
                continue;
            }
            bool valid = false;
            for (int k = 1; k < WeekDayNames.Length; k++)
            {
                if (day.Length >= 2 && string.CompareOrdinal(day, 0, WeekDayNames[k], 0, 2) == 0)
                {
                    ret |= 1u << k;
                    valid = true;
                }
            }
            if (!valid) throw ctx.Error($"{day} is not a valid day specifier");
        }
        return ret;
    }

    protected override void FinalCheck(ParseContext ctx, TimeData d)
    {
        if ((d.Given & (1 << OContiguous)) != 0 && d.DaytimeStart < d.DaytimeStop)
            throw ctx.Error("time: --contiguous only makes sense when stoptime is smaller than starttime");
    }

    private static string Clock(uint t) =>
        string.Create(CultureInfo.InvariantCulture, $"{t / 3600:D2}:{t / 60 % 60:D2}:{t % 60:D2}");

    private static string Date(uint t, char sep)
    {
        DateTime dt = DateTime.UnixEpoch.AddSeconds(t);
        return dt.ToString(sep == 'T' ? "yyyy-MM-dd'T'HH:mm:ss" : "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
    }

    private static void MonthDays(StringBuilder sb, uint mask, bool human)
    {
        sb.Append(' ');
        int n = 0;
        for (int i = 1; i <= 31; i++)
        {
            if ((mask & (1u << i)) == 0) continue;
            if (n++ > 0) sb.Append(',');
            sb.Append(XtParse.Dec((ulong)i));
            if (human) sb.Append((i % 10) switch { 1 => "st", 2 => "nd", 3 => "rd", _ => "th" });
        }
    }

    private static void WeekDays(StringBuilder sb, byte mask)
    {
        sb.Append(' ');
        int n = 0;
        for (int i = 1; i <= 7; i++)
        {
            if ((mask & (1 << i)) == 0) continue;
            if (n++ > 0) sb.Append(',');
            sb.Append(WeekDayNames[i]);
        }
    }

    protected override void Save(StringBuilder sb, TimeData d, IpFamily family)
    {
        if (d.DaytimeStart != 0 || d.DaytimeStop != MaxDaytime)
        {
            sb.Append(" --timestart ").Append(Clock(d.DaytimeStart)).Append(" --timestop ").Append(Clock(d.DaytimeStop));
        }
        if (d.MonthDays != AllMonthDays)
        {
            sb.Append(" --monthdays");
            MonthDays(sb, d.MonthDays, false);
        }
        if (d.WeekDays != AllWeekDays)
        {
            sb.Append(" --weekdays");
            WeekDays(sb, d.WeekDays);
        }
        // 1.8.9 skips only 0 and LONG_MAX here, so the default stop date (INT_MAX) is saved.
        if (d.DateStart != 0) sb.Append(" --datestart ").Append(Date(d.DateStart, 'T'));
        if (d.DateStop != 0) sb.Append(" --datestop ").Append(Date(d.DateStop, 'T'));
        if (d.KernelTz) sb.Append(" --kerneltz");
        if (d.Contiguous) sb.Append(" --contiguous");
    }

    protected override void Print(StringBuilder sb, TimeData d, IpFamily family, bool numeric)
    {
        sb.Append(" TIME");
        if (d.DaytimeStart != 0 || d.DaytimeStop != MaxDaytime)
        {
            sb.Append(" from ").Append(Clock(d.DaytimeStart)).Append(" to ").Append(Clock(d.DaytimeStop));
        }
        if (d.WeekDays != AllWeekDays)
        {
            sb.Append(" on");
            WeekDays(sb, d.WeekDays);
        }
        if (d.MonthDays != AllMonthDays)
        {
            sb.Append(" on");
            MonthDays(sb, d.MonthDays, true);
        }
        if (d.DateStart != 0) sb.Append(" starting from ").Append(Date(d.DateStart, ' '));
        if (d.DateStop != int.MaxValue) sb.Append(" until date ").Append(Date(d.DateStop, ' '));
        if (!d.KernelTz) sb.Append(" UTC");
        if (d.Contiguous) sb.Append(" contiguous");
    }

    /// <summary>
    /// xt_time.c on the host clock (whole seconds). --kerneltz shifts by the kernel's sys_tz, which is
    /// 0 minutes west on the virtual host (nothing calls settimeofday), so it equals UTC. A daytime range
    /// that wraps midnight matches outside the gap; with --contiguous the part after midnight counts as
    /// the previous day for --weekdays and --monthdays.
    /// </summary>
    protected override bool Match(PacketContext ctx, TimeData d)
    {
        long stamp = (long)Math.Floor(ctx.Now);
        if (stamp < d.DateStart || stamp > d.DateStop) return false;
        long packetTime = ((stamp % 86400) + 86400) % 86400;
        if (d.DaytimeStart < d.DaytimeStop)
        {
            if (packetTime < d.DaytimeStart || packetTime > d.DaytimeStop) return false;
        }
        else
        {
            if (packetTime < d.DaytimeStart && packetTime > d.DaytimeStop) return false;
            if (d.Contiguous && packetTime <= d.DaytimeStop) stamp -= 86400;
        }
        long days = (long)Math.Floor(stamp / 86400.0);
        int weekday = (int)(((days + 3) % 7 + 7) % 7) + 1; // 1970-01-01 was a Thursday (4); 1 = Monday
        if ((d.WeekDays & (1 << weekday)) == 0) return false;
        if (d.MonthDays != AllMonthDays)
        {
            int monthday = DateTime.UnixEpoch.AddDays(days).Day;
            if ((d.MonthDays & (1u << monthday)) == 0) return false;
        }
        return true;
    }
}
