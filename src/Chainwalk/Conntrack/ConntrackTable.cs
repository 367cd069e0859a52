using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Conntrack;

/// <summary>
/// The connection table of one network namespace (the conntrack hash): confirmed entries found by either
/// tuple and zone. Expired entries are removed when met (lookup, listing) as the kernel's lookup and gc do.
/// Entries are kept in insertion order (the kernel lists them in hash order).
/// </summary>
public sealed class ConntrackTable
{
    private readonly Dictionary<(ConnTuple Tuple, ushort Zone), (ConnEntry Entry, ConnDirection Dir)> _hash = new();
    private readonly LinkedList<ConnEntry> _entries = new();

    /// <summary>NAT's by-source index (nf_nat_bysource): the source-bound entries by original protocol, address and port.</summary>
    private readonly Dictionary<(IpFamily Family, byte Protocol, UInt128 Source, ushort Port), List<ConnEntry>> _bySource = new();

    public int Count => _entries.Count;

    /// <summary>The confirmed entries, oldest first.</summary>
    public IReadOnlyCollection<ConnEntry> Entries => _entries;

    /// <summary>
    /// The confirmed entries with a source binding (IPS_SRC_NAT_DONE) whose original tuple has this protocol,
    /// source address and port, oldest first (NAT's nf_nat_bysource, searched newest first).
    /// </summary>
    public IReadOnlyList<ConnEntry> BySource(ConnTuple original) =>
        _bySource.TryGetValue(SourceKey(original), out List<ConnEntry>? list) ? list : [];

    private static (IpFamily, byte, UInt128, ushort) SourceKey(ConnTuple t) => (t.Family, t.Protocol, t.Source, t.SourcePort);

    /// <summary>nf_conntrack_find_get: the live entry holding <paramref name="tuple"/> and the direction it was found in.</summary>
    public bool TryFind(ConnTuple tuple, ushort zone, double now, out ConnEntry entry, out ConnDirection dir)
    {
        if (_hash.TryGetValue((tuple, zone), out var hit))
        {
            if (hit.Entry.Timeout > now)
            {
                entry = hit.Entry;
                dir = hit.Dir;
                return true;
            }
            Remove(hit.Entry);
        }
        entry = null!;
        dir = ConnDirection.Original;
        return false;
    }

    /// <summary>Whether either tuple is taken (the clash test of __nf_conntrack_confirm).</summary>
    public bool Clashes(ConnEntry ct, double now) =>
        TryFind(ct.Original, ct.ZoneFor(ConnDirection.Original), now, out _, out _)
        || TryFind(ct.Reply, ct.ZoneFor(ConnDirection.Reply), now, out _, out _);

    /// <summary>Inserts a confirmed entry under both tuples.</summary>
    public void Insert(ConnEntry ct)
    {
        ct.Status |= ConnStatus.Confirmed;
        _hash[(ct.Original, ct.ZoneFor(ConnDirection.Original))] = (ct, ConnDirection.Original);
        _hash[(ct.Reply, ct.ZoneFor(ConnDirection.Reply))] = (ct, ConnDirection.Reply);
        ct.Node = _entries.AddLast(ct);
        if (ct.Has(ConnStatus.SrcNatDone))
        {
            var key = SourceKey(ct.Original);
            if (!_bySource.TryGetValue(key, out List<ConnEntry>? list)) _bySource[key] = list = new List<ConnEntry>(1);
            list.Add(ct);
        }
    }

    public void Remove(ConnEntry ct)
    {
        if (ct.Node is null || ct.Node.List != _entries) return;
        _entries.Remove(ct.Node);
        ct.Node = null;
        var ko = (ct.Original, ct.ZoneFor(ConnDirection.Original));
        if (_hash.TryGetValue(ko, out var a) && a.Entry == ct) _hash.Remove(ko);
        var kr = (ct.Reply, ct.ZoneFor(ConnDirection.Reply));
        if (_hash.TryGetValue(kr, out var b) && b.Entry == ct) _hash.Remove(kr);
        var ks = SourceKey(ct.Original);
        if (_bySource.TryGetValue(ks, out List<ConnEntry>? bySource) && bySource.Remove(ct) && bySource.Count == 0) _bySource.Remove(ks);
        ct.Status |= ConnStatus.Dying;
    }

    /// <summary>Removes the entries whose timeout has passed (the gc worker).</summary>
    public void Expire(double now)
    {
        LinkedListNode<ConnEntry>? n = _entries.First;
        while (n is not null)
        {
            LinkedListNode<ConnEntry>? next = n.Next;
            if (n.Value.Timeout <= now) Remove(n.Value);
            n = next;
        }
    }

    public void Clear()
    {
        _hash.Clear();
        _entries.Clear();
        _bySource.Clear();
    }

    /// <summary>
    /// early_drop: makes room by evicting one entry that is not assured (the kernel looks in the new tuple's
    /// hash buckets; Chainwalk takes the oldest). With <paramref name="gcEarlyDrop"/> (the gc worker's early
    /// drop after a "table full") an assured TCP connection that is closing may go too (tcp_can_early_drop).
    /// False when nothing could be evicted.
    /// </summary>
    public bool EarlyDrop(bool gcEarlyDrop = false)
    {
        foreach (ConnEntry ct in _entries)
        {
            if (!ct.Has(ConnStatus.Assured))
            {
                Remove(ct);
                return true;
            }
        }
        if (!gcEarlyDrop) return false;
        foreach (ConnEntry ct in _entries)
        {
            if (TcpTracker.CanEarlyDrop(ct))
            {
                Remove(ct);
                return true;
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ conntrack -L

    /// <summary>
    /// The entry's line as <c>conntrack -L</c> (conntrack-tools 1.4.7, libnetfilter_conntrack's default
    /// format) prints it: protocol name and number, seconds left, TCP state, the original tuple (with
    /// counters when accounting is on), [UNREPLIED], the reply tuple, [ASSURED], mark, zone, use.
    /// </summary>
    public static string Format(ConnEntry ct, double now)
    {
        var sb = new StringBuilder(160);
        string name = ProtocolName(ct.Protocol);
        sb.Append(name.PadRight(8)).Append(' ').Append(ct.Protocol.ToString(CultureInfo.InvariantCulture)).Append(' ');
        sb.Append(ct.SecondsLeft(now).ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (ct.Tcp is { } tcp) sb.Append(TcpTracker.Name(tcp.State)).Append(' ');
        AppendTuple(sb, ct.Original);
        AppendCounter(sb, ct, ConnDirection.Original);
        if (!ct.Has(ConnStatus.SeenReply)) sb.Append("[UNREPLIED] ");
        AppendTuple(sb, ct.Reply);
        AppendCounter(sb, ct, ConnDirection.Reply);
        if (ct.Has(ConnStatus.Assured)) sb.Append("[ASSURED] ");
        sb.Append("mark=").Append(ct.Mark.ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (ct.Secmark != 0) sb.Append("secmark=").Append(ct.Secmark.ToString(CultureInfo.InvariantCulture)).Append(' ');
        // Only a zone of both directions is dumped as CTA_ZONE; directional zones go inside the tuples
        // (CTA_TUPLE_ZONE), which this line does not show.
        if (ct.Zone != 0 && ct.ZoneDirections == 0) sb.Append("zone=").Append(ct.Zone.ToString(CultureInfo.InvariantCulture)).Append(' ');
        if (ct.Helper is { Length: > 0 } h) sb.Append("helper=").Append(h).Append(' ');
        sb.Append("use=1");
        return sb.ToString();
    }

    /// <summary>libnetfilter_conntrack's protocol names (others print as "unknown").</summary>
    public static string ProtocolName(byte proto) => proto switch
    {
        IpProtocol.Tcp => "tcp",
        IpProtocol.Udp => "udp",
        IpProtocol.UdpLite => "udplite",
        IpProtocol.Icmp => "icmp",
        IpProtocol.Icmpv6 => "icmpv6",
        IpProtocol.Sctp => "sctp",
        IpProtocol.Gre => "gre",
        33 => "dccp",
        _ => "unknown",
    };

    private static void AppendTuple(StringBuilder sb, ConnTuple t)
    {
        sb.Append("src=").Append(IpNet.FormatAddress(t.Source, t.Family)).Append(" dst=").Append(IpNet.FormatAddress(t.Destination, t.Family)).Append(' ');
        if (t.IsIcmp)
        {
            sb.Append("type=").Append(t.IcmpType.ToString(CultureInfo.InvariantCulture))
              .Append(" code=").Append(t.IcmpCode.ToString(CultureInfo.InvariantCulture))
              .Append(" id=").Append(t.SourcePort.ToString(CultureInfo.InvariantCulture)).Append(' ');
        }
        else if (t.Protocol == IpProtocol.Gre)
        {
            sb.Append("srckey=0x").Append(t.SourcePort.ToString("x", CultureInfo.InvariantCulture))
              .Append(" dstkey=0x").Append(t.DestinationPort.ToString("x", CultureInfo.InvariantCulture)).Append(' ');
        }
        else if (ConnTuple.HasPortTuple(t.Protocol))
        {
            sb.Append("sport=").Append(t.SourcePort.ToString(CultureInfo.InvariantCulture))
              .Append(" dport=").Append(t.DestinationPort.ToString(CultureInfo.InvariantCulture)).Append(' ');
        }
    }

    private static void AppendCounter(StringBuilder sb, ConnEntry ct, ConnDirection dir)
    {
        if (ct.Counters is null) return;
        ConnCounter c = ct.Counters[(int)dir];
        sb.Append("packets=").Append(c.Packets.ToString(CultureInfo.InvariantCulture))
          .Append(" bytes=").Append(c.Bytes.ToString(CultureInfo.InvariantCulture)).Append(' ');
    }

    /// <summary>Every live entry as <c>conntrack -L</c> lines, newest first (as a fresh hash often lists them).</summary>
    public IEnumerable<string> List(double now)
    {
        Expire(now);
        for (LinkedListNode<ConnEntry>? n = _entries.Last; n is not null; n = n.Previous) yield return Format(n.Value, now);
    }
}
