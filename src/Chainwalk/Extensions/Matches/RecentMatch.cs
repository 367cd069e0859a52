using System.Globalization;
using System.Text;
using Chainwalk.Engine;
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

    /// <summary>
    /// xt_recent.c's recent_mt. The address (source, or destination with --rdest) under the table's mask is
    /// looked up (with --rttl, also by TTL; a forwarded or routed packet without a socket counts its TTL
    /// before forwarding, +1). Not found: --set adds it and matches; others do not match. Found: --set
    /// matches, --remove deletes and matches, --rcheck/--update match when the entry has a time stamp
    /// (--hitcount: that many) within --seconds; --reap then drops the least recently seen entry if it is
    /// older. --set, and --update when it matched, add a time stamp. Jiffies are ms of the host clock.
    /// </summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Keys = new(StringComparer.Ordinal);

    protected override bool Match(PacketContext ctx, RecentData d)
    {
        // The per-namespace key, cached so that a packet allocates nothing (ctx.Named would build it each time).
        string key = Keys.GetOrAdd(d.ListName, static n => "recent:" + n);
        RecentTable t = ctx.State.Get(key, static () => new RecentTable());
        t.Prepare(d);
        Wire.Packet p = ctx.Packet;
        UInt128 addr = (d.Destination ? p.Destination : p.Source) & t.Mask;
        byte ttl = p.Ttl;
        if (ctx.OutDev is not null && ctx.Skb.Socket is null) ttl = unchecked((byte)(ttl + 1));
        long now = LimitMatch.Jiffies(ctx.Now);
        bool ret = d.Invert;
        RecentEntry? e = t.Lookup(addr, ctx.Family, (d.CheckSet & RecentFlags.Ttl) != 0 ? ttl : (byte)0);
        if (e is null)
        {
            if ((d.CheckSet & RecentFlags.Set) == 0) return ret;
            t.Add(addr, ctx.Family, ttl, now);
            return !ret;
        }
        if ((d.CheckSet & RecentFlags.Set) != 0)
        {
            ret = !ret;
        }
        else if ((d.CheckSet & RecentFlags.Remove) != 0)
        {
            t.Remove(e);
            ret = !ret;
        }
        else if ((d.CheckSet & (RecentFlags.Check | RecentFlags.Update)) != 0)
        {
            long time = now - (long)d.Seconds * LimitMatch.Hz;
            uint hits = 0;
            for (int i = 0; i < e.Count; i++)
            {
                if (d.Seconds != 0 && time > e.Stamps[i]) continue;
                if (d.HitCount == 0 || ++hits >= d.HitCount)
                {
                    ret = !ret;
                    break;
                }
            }
            if ((d.CheckSet & RecentFlags.Reap) != 0) t.Reap(time, e, (d.CheckSet & RecentFlags.Update) != 0 && ret);
        }
        if ((d.CheckSet & RecentFlags.Set) != 0 || ((d.CheckSet & RecentFlags.Update) != 0 && ret))
        {
            t.Update(e, now);
            e.Ttl = ttl;
        }
        return ret;
    }
}

/// <summary>One address in a recent list (struct recent_entry): its time stamps in a ring.</summary>
public sealed class RecentEntry
{
    public UInt128 Address;
    public IpFamily Family;
    public byte Ttl;

    /// <summary>Next slot to write (e->index, a u8).</summary>
    public byte Index;

    /// <summary>How many stamps are valid (e->nstamps).</summary>
    public int Count;

    public long[] Stamps = [];
}

/// <summary>
/// A recent list (struct recent_table, /proc/net/xt_recent/NAME): entries in least-recently-seen order,
/// at most ip_list_tot (100 on the kernel, as /sys/module/xt_recent/parameters/ip_list_tot reads on 6.18;
/// ip_pkt_list_tot is 0 there, so an entry keeps 32 stamps, or --hitcount rounded up to a power of two).
/// </summary>
public sealed class RecentTable : IRuntimeState
{
    /// <summary>ip_list_tot.</summary>
    public const int ListTotal = 100;

    /// <summary>The entries, least recently seen first (the table's lru_list).</summary>
    public List<RecentEntry> Entries { get; } = new();

    public UInt128 Mask { get; private set; } = ~UInt128.Zero;

    /// <summary>nstamps_max_mask.</summary>
    public int StampMask { get; private set; } = -1;

    private bool _maskSet;

    /// <summary>
    /// What recent_mt_check does when a rule using the table is loaded: the first rule's mask becomes the
    /// table's, and a rule needing more stamps flushes the table and enlarges it.
    /// </summary>
    public void Prepare(RecentData d)
    {
        if (!_maskSet)
        {
            Mask = d.Mask;
            _maskSet = true;
        }
        int mask = d.HitCount != 0 ? (int)System.Numerics.BitOperations.RoundUpToPowerOf2(d.HitCount) - 1 : 31;
        if (mask > StampMask)
        {
            if (StampMask >= 0) Entries.Clear();
            StampMask = mask;
        }
    }

    public RecentEntry? Lookup(UInt128 addr, IpFamily family, byte ttl)
    {
        foreach (RecentEntry e in Entries)
        {
            if (e.Family == family && e.Address == addr && (ttl == e.Ttl || ttl == 0 || e.Ttl == 0)) return e;
        }
        return null;
    }

    public RecentEntry Add(UInt128 addr, IpFamily family, byte ttl, long now)
    {
        if (Entries.Count >= ListTotal) Entries.RemoveAt(0);
        var e = new RecentEntry { Address = addr, Family = family, Ttl = ttl, Index = 1, Count = 1, Stamps = new long[StampMask + 1] };
        e.Stamps[0] = now;
        Entries.Add(e);
        return e;
    }

    public void Remove(RecentEntry e) => Entries.Remove(e);

    /// <summary>recent_entry_update: a new stamp in the ring, and the entry becomes the most recently seen.</summary>
    public void Update(RecentEntry e, long now)
    {
        e.Index = (byte)(e.Index & StampMask);
        e.Stamps[e.Index++] = now;
        if (e.Index > e.Count) e.Count = e.Index;
        Entries.Remove(e);
        Entries.Add(e);
    }

    /// <summary>recent_entry_reap: the least recently seen entry goes if its newest stamp is older than <paramref name="time"/>, unless it is about to be updated.</summary>
    public void Reap(long time, RecentEntry working, bool update)
    {
        if (Entries.Count == 0) return;
        RecentEntry e = Entries[0];
        if (e == working && update) return;
        if (time > e.Stamps[(e.Index - 1) & StampMask]) Entries.RemoveAt(0);
    }

    public System.Text.Json.Nodes.JsonNode? Save()
    {
        var o = new System.Text.Json.Nodes.JsonObject
        {
            ["mask"] = Mask.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["stampMask"] = StampMask,
        };
        var list = new System.Text.Json.Nodes.JsonArray();
        foreach (RecentEntry e in Entries)
        {
            var stamps = new System.Text.Json.Nodes.JsonArray();
            for (int i = 0; i < e.Count; i++) stamps.Add(e.Stamps[i]);
            list.Add(new System.Text.Json.Nodes.JsonObject
            {
                ["addr"] = e.Address.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["v6"] = e.Family == IpFamily.V6,
                ["ttl"] = e.Ttl,
                ["index"] = e.Index,
                ["stamps"] = stamps,
            });
        }
        o["entries"] = list;
        return o;
    }

    public void Load(System.Text.Json.Nodes.JsonNode node)
    {
        Mask = UInt128.Parse((string)node["mask"]!, System.Globalization.CultureInfo.InvariantCulture);
        _maskSet = true;
        StampMask = (int)node["stampMask"]!;
        Entries.Clear();
        foreach (System.Text.Json.Nodes.JsonNode? n in node["entries"]!.AsArray())
        {
            if (n is null) continue;
            var stamps = n["stamps"]!.AsArray();
            var e = new RecentEntry
            {
                Address = UInt128.Parse((string)n["addr"]!, System.Globalization.CultureInfo.InvariantCulture),
                Family = (bool)n["v6"]! ? IpFamily.V6 : IpFamily.V4,
                Ttl = (byte)n["ttl"]!,
                Index = (byte)n["index"]!,
                Count = stamps.Count,
                Stamps = new long[StampMask + 1],
            };
            for (int i = 0; i < stamps.Count && i <= StampMask; i++) e.Stamps[i] = (long)stamps[i]!;
            Entries.Add(e);
        }
    }
}
