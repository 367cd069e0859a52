using Chainwalk.Compat;
using Chainwalk.Conntrack;
using Chainwalk.Engine;

namespace Chainwalk.Tracing;

/// <summary>
/// The conntrack events (ctnetlink's NEW, UPDATE, DESTROY) the packets of a trace generate, kept for the next
/// <c>conntrack -E</c>: a connection confirmed is NEW; a change of its TCP state or of its SEEN_REPLY/ASSURED
/// bits is an UPDATE; one that left the table (expired, early-dropped, replaced) is DESTROY; and the counters
/// <c>conntrack -S</c> shows (invalid packets, drops).
/// </summary>
public sealed class ConntrackEvents
{
    private readonly Dictionary<ConnEntry, (TcpCtState? State, ConnStatus Bits)> _known = new(ReferenceEqualityComparer.Instance);
    private readonly ConntrackHooks _hooks;
    private readonly ConntrackCompat.ConntrackEventLog _log;
    private readonly ConntrackCompat.ConntrackStats _stats;

    /// <summary>The table's removal count when the known entries were last compared with it.</summary>
    private long _removals;

    private ConntrackEvents(ConntrackHooks hooks, RuntimeState state)
    {
        _hooks = hooks;
        _log = state.Get(ConntrackCompat.ConntrackEventLog.Key, () => new ConntrackCompat.ConntrackEventLog());
        _stats = state.Get(ConntrackCompat.ConntrackStats.Key, () => new ConntrackCompat.ConntrackStats());
        foreach (ConnEntry e in hooks.Table.Entries) _known[e] = Snapshot(e);
        _removals = hooks.Table.Removals;
    }

    /// <summary>An observer for the netfilter's conntrack, or null when conntrack is not loaded.</summary>
    public static ConntrackEvents? For(Netfilter nf) => nf.Conntrack is ConntrackHooks h ? new ConntrackEvents(h, nf.State) : null;

    private static (TcpCtState?, ConnStatus) Snapshot(ConnEntry e) =>
        (e.TcpState, e.Status & (ConnStatus.SeenReply | ConnStatus.Assured | ConnStatus.SrcNat | ConnStatus.DstNat));

    /// <summary>An event's text, made when the log is read (the closure made here, so that a packet that changes nothing allocates none).</summary>
    private static Func<string> Event(string kind, ConnEntry copy, double now) => () => kind + ConntrackCompat.EventBody(copy, now);

    /// <summary>Records what one packet changed.</summary>
    public void After(PacketResult r, double now)
    {
        if (r.CtState == "INVALID") _stats.Invalid++;
        if (r.DropReason is "dropped by connection tracking" or "conntrack confirmation failed") _stats.Drop++;
        // Entries left the table (or it shrank, or the packet had no connection): find which. The removal count also
        // catches a removal and an insertion in one packet (a SYN reopening a closed connection's tuple), whose entry
        // the table may later reuse for another connection (ConntrackTable's pool).
        if (_known.Count > _hooks.Table.Count || r.Connection is null || _hooks.Table.Removals != _removals)
        {
            _removals = _hooks.Table.Removals;
            var live = new HashSet<ConnEntry>(_hooks.Table.Entries, ReferenceEqualityComparer.Instance);
            foreach (ConnEntry gone in _known.Keys.Where(k => !live.Contains(k)).ToList())
            {
                ConnEntry copy = gone.Copy();
                _log.Add(Event("[DESTROY] ", copy, now));
                _known.Remove(gone);
            }
        }
        if (r.Connection is not ConnEntry e || !e.IsConfirmed) return;
        var snap = Snapshot(e);
        if (!_known.TryGetValue(e, out var before))
        {
            _known[e] = snap;
            ConnEntry copy = e.Copy();
            _log.Add(Event("[NEW] ", copy, now));
        }
        else if (before != snap)
        {
            _known[e] = snap;
            ConnEntry copy = e.Copy();
            _log.Add(Event("[UPDATE] ", copy, now));
        }
    }
}
