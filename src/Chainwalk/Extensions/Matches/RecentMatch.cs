using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>What a <c>-m recent</c> rule does with its list (XT_RECENT_* check_set bits).</summary>
[Flags]
public enum RecentFlags : byte
{
    None = 0,
    Check = 1,
    Set = 2,
    Update = 4,
    Remove = 8,
    Ttl = 16,
    Reap = 32,
}

/// <summary>Options of <c>-m recent</c> (struct xt_recent_mtinfo_v1).</summary>
public sealed class RecentData : ExtensionData
{
    public uint Seconds;
    public uint HitCount;
    public RecentFlags CheckSet;
    public bool Invert;
    public string ListName = "DEFAULT";

    /// <summary>True for --rdest (XT_RECENT_DEST), false for --rsource (the default).</summary>
    public bool Destination;

    /// <summary>Mask applied to the address before it is stored or looked up (all ones by default).</summary>
    public UInt128 Mask;
}

/// <summary><c>-m recent</c> (libxt_recent.c revision 1, xt_recent.c).</summary>
public sealed class RecentMatch : XtExtension<RecentData>
{
    private const int OSet = 0, ORcheck = 1, OUpdate = 2, ORemove = 3, OSeconds = 4, OReap = 5, OHitcount = 6,
        ORttl = 7, OName = 8, ORsource = 9, ORdest = 10, OMask = 11;

    private const ulong AnyOp = (1 << OSet) | (1 << ORcheck) | (1 << OUpdate) | (1 << ORemove);

    /// <summary>XT_RECENT_NAME_LEN - 1.</summary>
    internal const int MaxNameLength = 199;

    public override string Name => "recent";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("set", OSet, OptionArg.None, OptFlags.Invert) { Excludes = AnyOp },
        new("rcheck", ORcheck, OptionArg.None, OptFlags.Invert) { Excludes = AnyOp },
        new("update", OUpdate, OptionArg.None, OptFlags.Invert) { Excludes = AnyOp },
        new("remove", ORemove, OptionArg.None, OptFlags.Invert) { Excludes = AnyOp },
        new("seconds", OSeconds),
        new("reap", OReap, OptionArg.None) { Also = 1 << OSeconds },
        new("hitcount", OHitcount),
        new("rttl", ORttl, OptionArg.None) { Excludes = (1 << OSet) | (1 << ORemove) },
        new("name", OName),
        new("rsource", ORsource, OptionArg.None),
        new("rdest", ORdest, OptionArg.None),
        new("mask", OMask),
    ];

    protected override void Init(ParseContext ctx, RecentData data) => data.Mask = IpNet.FullMask(ctx.Family);

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RecentData d)
    {
        switch (option.Id)
        {
            case OSet: d.CheckSet |= RecentFlags.Set; d.Invert |= invert; break;
            case ORcheck: d.CheckSet |= RecentFlags.Check; d.Invert |= invert; break;
            case OUpdate: d.CheckSet |= RecentFlags.Update; d.Invert |= invert; break;
            case ORemove: d.CheckSet |= RecentFlags.Remove; d.Invert |= invert; break;
            case OSeconds: d.Seconds = (uint)XtParse.UIntBad(argument!, 1, uint.MaxValue, Name, option.Name); break;
            case OReap: d.CheckSet |= RecentFlags.Reap; break;
            case OHitcount: d.HitCount = (uint)XtParse.UIntBad(argument!, 0, uint.MaxValue, Name, option.Name); break;
            case ORttl: d.CheckSet |= RecentFlags.Ttl; break;
            case OName: d.ListName = CommentMatch.Truncate(argument!, MaxNameLength); break;
            case ORsource: d.Destination = false; break;
            case ORdest: d.Destination = true; break;
            case OMask: d.Mask = XtParse.Host(argument!, ctx.Family, ctx.Names); break;
        }
    }

    protected override void FinalCheck(ParseContext ctx, RecentData d)
    {
        if ((d.Given & AnyOp) == 0)
            throw ctx.Error("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'");
    }

    /// <summary>recent_mt_check: modifiers only with --rcheck/--update, hit count at most 65535, a usable list name.</summary>
    protected override string? CheckEntry(RuleCheckContext ctx, RecentData d)
    {
        if ((d.CheckSet & (RecentFlags.Set | RecentFlags.Remove)) != 0
            && (d.Seconds != 0 || d.HitCount != 0 || (d.CheckSet & (RecentFlags.Ttl | RecentFlags.Reap)) != 0))
            return RulesetEditor.InvalidArgument;
        if ((d.CheckSet & RecentFlags.Reap) != 0 && d.Seconds == 0) return RulesetEditor.InvalidArgument;
        if (d.HitCount > 65535) return RulesetEditor.InvalidArgument;
        if (d.ListName.Length == 0 || d.ListName == "." || d.ListName == ".." || d.ListName.Contains('/', StringComparison.Ordinal))
            return RulesetEditor.InvalidArgument;
        return null;
    }

    private static string Signed(uint v) => unchecked((int)v).ToString(CultureInfo.InvariantCulture);

    protected override void Save(StringBuilder sb, RecentData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        if ((d.CheckSet & RecentFlags.Set) != 0) sb.Append(" --set");
        if ((d.CheckSet & RecentFlags.Check) != 0) sb.Append(" --rcheck");
        if ((d.CheckSet & RecentFlags.Update) != 0) sb.Append(" --update");
        if ((d.CheckSet & RecentFlags.Remove) != 0) sb.Append(" --remove");
        if (d.Seconds != 0) sb.Append(" --seconds ").Append(Signed(d.Seconds));
        if ((d.CheckSet & RecentFlags.Reap) != 0) sb.Append(" --reap");
        if (d.HitCount != 0) sb.Append(" --hitcount ").Append(Signed(d.HitCount));
        if ((d.CheckSet & RecentFlags.Ttl) != 0) sb.Append(" --rttl");
        sb.Append(" --name ").Append(d.ListName);
        sb.Append(" --mask ").Append(IpNet.FormatAddress(d.Mask, family));
        sb.Append(d.Destination ? " --rdest" : " --rsource");
    }

    protected override void Print(StringBuilder sb, RecentData d, IpFamily family, bool numeric)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" recent:");
        if ((d.CheckSet & RecentFlags.Set) != 0) sb.Append(" SET");
        if ((d.CheckSet & RecentFlags.Check) != 0) sb.Append(" CHECK");
        if ((d.CheckSet & RecentFlags.Update) != 0) sb.Append(" UPDATE");
        if ((d.CheckSet & RecentFlags.Remove) != 0) sb.Append(" REMOVE");
        if (d.Seconds != 0) sb.Append(" seconds: ").Append(Signed(d.Seconds));
        if ((d.CheckSet & RecentFlags.Reap) != 0) sb.Append(" reap");
        if (d.HitCount != 0) sb.Append(" hit_count: ").Append(Signed(d.HitCount));
        if ((d.CheckSet & RecentFlags.Ttl) != 0) sb.Append(" TTL-Match");
        sb.Append(" name: ").Append(d.ListName);
        sb.Append(d.Destination ? " side: dest" : " side: source");
        sb.Append(" mask: ").Append(IpNet.FormatAddress(d.Mask, family));
    }
}
