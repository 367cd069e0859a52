using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Conntrack;

/// <summary>
/// Connection tracking for the engine (net/netfilter/nf_conntrack_core.c): nf_conntrack_in at PREROUTING
/// and OUTPUT, the confirmation at the end of INPUT and POSTROUTING, nf_ct_attach for generated packets.
/// Conntrack runs only for the families whose rules load it (<see cref="ConntrackLoader"/>). NAT bindings
/// and translations are the Nat room's (<see cref="Nat.NatHooks"/>), called from the nat hooks here.
/// </summary>
public sealed class ConntrackHooks : IConntrackHooks
{
    public ConntrackHooks(ConntrackTable? table = null) => Table = table ?? new ConntrackTable();

    public ConntrackTable Table { get; }

    /// <summary>MASQUERADE's last source address choice for this netfilter (Nat.NatTargets.Source4).</summary>
    internal Nat.NatTargets.SourceMemo MasqueradeSource { get; } = new();

    /// <summary>Whether IPv4 packets are tracked (nf_conntrack_ipv4's hooks registered in the namespace).</summary>
    public bool TrackV4 { get; set; } = true;

    public bool TrackV6 { get; set; } = true;

    /// <summary>
    /// NAT's bindings of IPv4 TCP/UDP connections to one address decided from the entry's fields where they can be
    /// (Nat.NatCore.TrySetupV4); false: always the general tuple search (tests compare the two).
    /// </summary>
    internal bool NatByFields { get; set; } = true;

    /// <summary>Bindings made by <see cref="NatByFields"/>'s path (tests: the comparison with the general search means something).</summary>
    internal long NatFieldBindings;

    /// <summary>Accounting forced on by a connbytes rule (xt_connbytes' checkentry does it), besides the sysctl.</summary>
    public bool ForceAccounting { get; set; }

    private bool Tracks(IpFamily f) => f == IpFamily.V4 ? TrackV4 : TrackV6;


    /// <summary>The conntrack state name a packet got, as -m conntrack --ctstate names it.</summary>
    public static string StateName(CtInfo info) => info switch
    {
        CtInfo.New => "NEW",
        CtInfo.Established or CtInfo.EstablishedReply => "ESTABLISHED",
        CtInfo.Related or CtInfo.RelatedReply => "RELATED",
        CtInfo.Untracked => "UNTRACKED",
        _ => "INVALID",
    };

    public bool Track(PacketContext ctx)
    {
        Skb skb = ctx.Skb;
        if (!Tracks(skb.Family)) return true;
        ConnTemplate? template = null;
        if (skb.Conntrack is ConnEntry)
        {
            // Already tracked (a looped-back packet, a generated packet attached to its cause): left alone.
            Record(ctx);
            return true;
        }
        if (skb.CtInfo == CtInfo.Untracked)
        {
            Record(ctx);
            return true;
        }
        if (skb.Conntrack is ConnTemplate tpl) template = tpl;
        skb.Conntrack = null;
        skb.CtInfo = CtInfo.None;
        long hint = skb.TupleHint;
        if (hint >= 0) skb.TupleHint = -1;
        bool ok = In(ctx, template, hint);
        Record(ctx);
        return ok;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void Record(PacketContext ctx)
    {
        // The packet's own state: the first one recorded (a looped-back copy or a generated answer does not replace it).
        if (ctx.Netfilter.Current is { CtState: null } r && ctx.Skb.Conntrack is not ConnTemplate) r.CtState = StateName(ctx.Skb.CtInfo);
    }

    private bool CheckChecksums(PacketContext ctx) =>
        ctx.Hook == Hook.Prerouting && SysctlsFor(ctx.Host).Checksum;

    /// <summary>nf_conntrack_in: false = drop (table full).</summary>
    /// <param name="hint">The tuple's hash from the arrival's prefetch (<see cref="Skb.TupleHint"/>, the bytes unchanged since), or -1.</param>
    private bool In(PacketContext ctx, ConnTemplate? template, long hint = -1)
    {
        Skb skb = ctx.Skb;
        Packet p = skb.Packet;
        double now = ctx.Now;
        ushort zone = template is null ? (ushort)0 : template.ZoneFromMark ? (ushort)skb.Mark : template.Zone;
        byte zoneDirs = template?.ZoneDirections ?? 0;

        // Without reassembly a later fragment has no transport header to track: the kernel's defrag would
        // have held it; Chainwalk leaves it untracked-invalid.
        if (p.IsNonFirstFragment) return true;

        if (p.IsIcmp)
        {
            int r = IcmpError(ctx, p, zone, zoneDirs);
            if (r <= 0) return true;
        }

        // An IPv4 TCP/UDP packet in the default zone is first looked up by its fields (ConntrackTable.TryFindV4): the
        // tuple (nf_ct_get_tuple's, what TryFromPacket builds) is made only when the lookup missed or is repeated.
        bool v4 = zone == 0 && zoneDirs == 0 && p.Family == IpFamily.V4 && p.Protocol is IpProtocol.Tcp or IpProtocol.Udp && p.HasPorts;
        ConnTuple tuple = default;
        if (!v4 && !ConnTuple.TryFromPacket(p, out tuple)) return true;
        for (int attempt = 0; attempt < 2; attempt++)
        {
            ConnEntry ct;
            ConnDirection dir;
            bool isNew = false;
            bool found;
            if (v4 && attempt == 0)
            {
                // The prefetch hashed the same tuple for zone 0 (Prefetch below): its hash stands for this lookup then.
                found = Table.TryFindV4(p.Protocol, (uint)p.Source, (uint)p.Destination, p.SourcePort, p.DestinationPort,
                    hint >= 0 ? (int)(hint >> 32) : -1, now, out ct, out dir);
            }
            else
            {
                if (v4 && attempt == 1 && tuple.Family != IpFamily.V4)
                    tuple = new ConnTuple(IpFamily.V4, p.Protocol, p.Source, p.Destination, p.SourcePort, p.DestinationPort);
                found = Lookup(tuple, zone, zoneDirs, now, out ct, out dir);
            }
            if (!found)
            {
                if (v4 && attempt == 0)
                {
                    // A TCP/UDP tuple always has its inverse (ports swapped): the entry's fields are written from the packet's
                    // once (ConntrackTable.NewEntryV4), from the table's pool of removed entries when it has one; the same
                    // entry as NewEntry(tuple, inverse) gives.
                    if (!MakeRoom(ctx)) return false;
                    ct = Table.NewEntryV4(p.Protocol, (uint)p.Source, (uint)p.Destination, p.SourcePort, p.DestinationPort);
                    // SNAT (MASQUERADE at POSTROUTING) will search the by-source index for this source: fetched meanwhile.
                    Table.PrefetchBySourceV4(p.Protocol, (uint)p.Source, p.SourcePort);
                }
                else
                {
                    if (!tuple.TryInvert(out ConnTuple reply)) return true;
                    if (!MakeRoom(ctx)) return false;
                    // From the table's pool of removed entries when it has one (ConntrackTable.NewEntry).
                    ct = Table.NewEntry(tuple, reply);
                    Table.PrefetchBySource(tuple);
                }
                ct.Zone = zone;
                ct.ZoneDirections = zoneDirs;
                ct.Helper = template?.Helper;
                ct.EventMask = template?.EventMask ?? 0;
                ct.Counters = Accounting(ctx) ? new ConnCounter[2] : null;
                dir = ConnDirection.Original;
                isNew = true;
            }
            CtInfo info;
            if (dir == ConnDirection.Reply) info = CtInfo.EstablishedReply;
            else if (ct.Has(ConnStatus.SeenReply)) info = CtInfo.Established;
            else if (ct.Has(ConnStatus.Expected)) info = CtInfo.Related;
            else info = CtInfo.New;

            switch (Packet(ctx, ct, p, dir, isNew, now))
            {
                case PacketVerdict.Invalid:
                    return true;
                case PacketVerdict.Repeat:
                    Table.Remove(ct);
                    continue;
            }
            skb.Conntrack = ct;
            skb.CtInfo = info;
            if (info == CtInfo.EstablishedReply) ct.Status |= ConnStatus.SeenReply;
            return true;
        }
        return true;
    }

    /// <summary>The hash lookup with the packet's zone: the entry's zone id in the direction found must be the packet's.</summary>
    private bool Lookup(ConnTuple tuple, ushort zone, byte zoneDirs, double now, out ConnEntry ct, out ConnDirection dir)
    {
        ushort zo = ConnEntry.ZoneIdFor(zone, zoneDirs, ConnDirection.Original);
        ushort zr = ConnEntry.ZoneIdFor(zone, zoneDirs, ConnDirection.Reply);
        if (Table.TryFind(tuple, zo, now, out ct, out dir) && ct.ZoneFor(dir) == (dir == ConnDirection.Original ? zo : zr)) return true;
        if (zr != zo && Table.TryFind(tuple, zr, now, out ct, out dir) && ct.ZoneFor(dir) == (dir == ConnDirection.Original ? zo : zr)) return true;
        ct = null!;
        dir = ConnDirection.Original;
        return false;
    }

    /// <summary>The sysctl snapshot last used here (an instance field: no static or thread-static read per packet).</summary>
    private ConntrackSysctls? _sysctls;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private ConntrackSysctls SysctlsFor(VirtualHost host)
    {
        ConntrackSysctls? s = _sysctls;
        if (s is not null && s.IsCurrentFor(host)) return s;
        return _sysctls = ConntrackSysctls.For(host);
    }

    /// <summary>Set after a "table full": the gc worker then also evicts assured connections its protocol says may go (conntrack_gc_work.early_drop).</summary>
    private bool _gcEarlyDrop;

    private bool Accounting(PacketContext ctx) => ForceAccounting || SysctlsFor(ctx.Host).Accounting;

    /// <summary>The snapshot whose nf_conntrack_buckets <see cref="MakeRoom"/> last gave the table (the same snapshot, the same count).</summary>
    private ConntrackSysctls? _bucketsFrom;

    /// <summary>__nf_conntrack_alloc's limit: nf_conntrack_max, early drop, else "table full".</summary>
    private bool MakeRoom(PacketContext ctx)
    {
        ConntrackSysctls sysctls = SysctlsFor(ctx.Host);
        // The hash's size follows nf_conntrack_buckets (a changed value rehashes it, as the sysctl's write does): given to the
        // table once per snapshot (ConntrackTable.UseBuckets of an unchanged count does nothing).
        if (!ReferenceEquals(sysctls, _bucketsFrom))
        {
            Table.UseBuckets(sysctls.Buckets);
            _bucketsFrom = sysctls;
        }
        int max = sysctls.Max;
        return max <= 0 || Table.Count < max || MakeRoomFull(ctx, max);
    }

    /// <summary><see cref="MakeRoom"/> when the table holds nf_conntrack_max entries: expired ones, early drop, else "table full".</summary>
    private bool MakeRoomFull(PacketContext ctx, int max)
    {
        Table.Expire(ctx.Now);
        if (Table.Count < max) return true;
        if (Table.EarlyDrop(_gcEarlyDrop)) return true;
        // The gc worker is told to evict closing connections too; it runs soon after, before the next packet here.
        _gcEarlyDrop = true;
        // net_warn_ratelimited with nf_conntrack_core.c's pr_fmt prefix: the module name appears twice.
        ctx.Log("nf_conntrack: nf_conntrack: table full, dropping packet");
        ctx.Note("conntrack table full (nf_conntrack_max " + max.ToString(System.Globalization.CultureInfo.InvariantCulture) + "): dropped");
        return false;
    }

    private enum PacketVerdict : byte
    {
        Ok,
        Invalid,
        Repeat,
    }

    /// <summary>The protocol tracker's packet function (nf_conntrack_handle_packet).</summary>
    /// <param name="now">The host clock as the lookup read it (<see cref="PacketContext.Now"/>: the same packet, the same value).</param>
    private PacketVerdict Packet(PacketContext ctx, ConnEntry ct, Packet p, ConnDirection dir, bool isNew, double now)
    {
        VirtualHost host = ctx.Host;
        int len = p.TotalLength;
        switch (p.Protocol)
        {
            case IpProtocol.Tcp:
                {
                    ConntrackSysctls sys = SysctlsFor(host);
                    if (TcpTracker.Error(p, ctx.Hook == Hook.Prerouting && sys.Checksum) is { } why)
                    {
                        if (ctx.Netfilter.Current?.Trace is not null) ctx.Note("conntrack: invalid TCP packet (" + why + ")");
                        return PacketVerdict.Invalid;
                    }
                    if (isNew && !TcpTracker.New(ct, p, host))
                    {
                        ctx.Note("conntrack: invalid new TCP packet");
                        return PacketVerdict.Invalid;
                    }
                    switch (TcpTracker.Packet(ct, p, (int)dir, host, sys, now, out double timeout))
                    {
                        case TcpTracker.Outcome.Invalid:
                            ctx.Note("conntrack: the TCP state machine refuses the packet");
                            return PacketVerdict.Invalid;
                        case TcpTracker.Outcome.Repeat:
                            return PacketVerdict.Repeat;
                        case TcpTracker.Outcome.AcceptQuiet:
                            if (isNew) ct.Timeout = now + Sysctls.Int(host, "net.netfilter.nf_conntrack_tcp_timeout_syn_sent", 120);
                            return PacketVerdict.Ok;
                        case TcpTracker.Outcome.Kill:
                            ct.Account(dir, len);
                            Table.Remove(ct);
                            return PacketVerdict.Ok;
                    }
                    Refresh(ct, dir, len, now + timeout);
                    return PacketVerdict.Ok;
                }
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
                {
                    if (!p.HasTransportHeader) return PacketVerdict.Invalid;
                    if (p.Protocol == IpProtocol.Udp)
                    {
                        int udpLen = (p.Bytes[p.TransportOffset + 4] << 8) | p.Bytes[p.TransportOffset + 5];
                        if (udpLen > p.TransportLength || udpLen < 8)
                        {
                            ctx.Note("conntrack: UDP length field wrong (truncated/malformed packet)");
                            return PacketVerdict.Invalid;
                        }
                        // udp_error: a zero checksum is "none" and not checked (IPv6 included: ip6_input drops it earlier).
                        int sum = (p.Bytes[p.TransportOffset + 6] << 8) | p.Bytes[p.TransportOffset + 7];
                        if (sum != 0 && CheckChecksums(ctx) && !p.TransportChecksumValid)
                        {
                            ctx.Note("conntrack: bad UDP checksum");
                            return PacketVerdict.Invalid;
                        }
                    }
                    if (isNew) ct.UdpStreamAt = now + 2;
                    int unreplied = SysctlsFor(host).UdpTimeout;
                    if (ct.Has(ConnStatus.SeenReply))
                    {
                        // Still active two seconds after the first packet: a stream, assured, with the longer timeout.
                        int extra = unreplied;
                        bool stream = false;
                        if (now > ct.UdpStreamAt)
                        {
                            extra = SysctlsFor(host).UdpStreamTimeout;
                            stream = !ct.Has(ConnStatus.Assured);
                        }
                        Refresh(ct, dir, len, now + extra);
                        if (stream) ct.Status |= ConnStatus.Assured;
                    }
                    else
                    {
                        Refresh(ct, dir, len, now + unreplied);
                    }
                    return PacketVerdict.Ok;
                }
            case IpProtocol.Icmp when p.Family == IpFamily.V4:
            case IpProtocol.Icmpv6 when p.Family == IpFamily.V6:
                {
                    if (isNew && !ConnTuple.IcmpStartsConnection(p.Family, p.IcmpType))
                    {
                        if (ctx.Netfilter.Current?.Trace is not null)
                            ctx.Note("conntrack: ICMP type " + p.IcmpType.ToString(System.Globalization.CultureInfo.InvariantCulture) + " cannot start a connection");
                        return PacketVerdict.Invalid;
                    }
                    int t = p.Family == IpFamily.V4 ? SysctlsFor(host).IcmpTimeout : SysctlsFor(host).Icmpv6Timeout;
                    Refresh(ct, dir, len, now + t);
                    return PacketVerdict.Ok;
                }
            case IpProtocol.Gre:
                {
                    // gre_packet: the unreplied timeout until a reply was seen (the first reply included), then
                    // the stream timeout and ASSURED.
                    if (ct.Has(ConnStatus.SeenReply))
                    {
                        Refresh(ct, dir, len, now + Sysctls.Int(host, "net.netfilter.nf_conntrack_gre_timeout_stream", 180));
                        ct.Status |= ConnStatus.Assured;
                    }
                    else
                    {
                        Refresh(ct, dir, len, now + Sysctls.Int(host, "net.netfilter.nf_conntrack_gre_timeout", 30));
                    }
                    return PacketVerdict.Ok;
                }
            default:
                // nf_conntrack_proto_generic.c (SCTP and DCCP have trackers of their own in the kernel;
                // Chainwalk keeps their ports but tracks them with the generic timeout).
                Refresh(ct, dir, len, now + SysctlsFor(host).GenericTimeout);
                return PacketVerdict.Ok;
        }
    }

    /// <summary>nf_ct_refresh_acct: new timeout (unless fixed) and the counters.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void Refresh(ConnEntry ct, ConnDirection dir, int len, double timeout)
    {
        if (!ct.Has(ConnStatus.FixedTimeout)) ct.Timeout = timeout;
        ct.Account(dir, len);
    }

    /// <summary>
    /// icmp_error / icmpv6_error and nf_conntrack_inet_error. Returns 1 when the packet is not an error and
    /// goes on to normal tracking; 0 when it was dealt with (RELATED, UNTRACKED or INVALID).
    /// </summary>
    private int IcmpError(PacketContext ctx, Packet p, ushort zone, byte zoneDirs)
    {
        Skb skb = ctx.Skb;
        if (!p.HasTransportHeader)
        {
            ctx.Note("conntrack: short ICMP packet");
            return 0;
        }
        if (CheckChecksums(ctx) && !p.TransportChecksumValid)
        {
            ctx.Note("conntrack: bad ICMP checksum");
            return 0;
        }
        bool isError;
        if (p.Family == IpFamily.V4)
        {
            if (p.IcmpType > 18)
            {
                ctx.Note("conntrack: invalid ICMP type");
                return 0;
            }
            isError = IcmpType.IsError(p.IcmpType);
        }
        else
        {
            // Neighbour discovery and MLD are never tracked (noct_valid_new in nf_conntrack_proto_icmpv6.c).
            if (p.IcmpType is >= 130 and <= 136 or 143)
            {
                skb.CtInfo = CtInfo.Untracked;
                return 0;
            }
            isError = p.IcmpType < 128;
        }
        if (!isError) return 1;

        Packet? inner = p.QuotedPacket;
        if (inner is null || !ConnTuple.TryFromPacket(inner, out ConnTuple quoted) || !quoted.TryInvert(out ConnTuple answer))
        {
            ctx.Note("conntrack: ICMP error quoting an untrackable packet");
            return 0;
        }
        if (!Lookup(answer, zone, zoneDirs, ctx.Now, out ConnEntry ct, out ConnDirection dir))
        {
            ctx.Note("conntrack: ICMP error about no known connection");
            return 0;
        }
        // The error must go where the quoted packet came from (the outer destination is the tuple's).
        if (ct.Tuple(dir).Destination != p.Destination)
        {
            ctx.Note("conntrack: ICMP error: outer destination differs from the connection's");
            return 0;
        }
        skb.Conntrack = ct;
        skb.CtInfo = dir == ConnDirection.Reply ? CtInfo.RelatedReply : CtInfo.Related;
        return 0;
    }

    /// <summary>
    /// The destination after PREROUTING's NAT: the other direction's tuple's source (nf_nat_packet makes the packet the
    /// inverse of that tuple; without a destination binding it is the packet's own destination anyway). IPv4 only.
    /// </summary>
    /// <remarks>
    /// A flag and an address (not a <c>uint?</c>): the JIT built the nullable field by field in a stack slot and read it back
    /// as 8 bytes for the return, a load that waited on two narrower stores it could not be forwarded from (≈ 0.5 % of a
    /// kube SYN's samples on that one read, session 13 ctnew2).
    /// </remarks>
    public bool TryRoutedDestination4(Skb skb, out uint destination)
    {
        if (skb.Conntrack is ConnEntry ct && ct.Family == IpFamily.V4 && skb.CtInfo is not (CtInfo.None or CtInfo.Untracked))
        {
            destination = ct.SourceV4(skb.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply ? ConnDirection.Original : ConnDirection.Reply);
            return true;
        }
        destination = 0;
        return false;
    }

    /// <summary>Only an unconfirmed connection's packet has anything to confirm (see <see cref="Confirm"/>).</summary>
    public bool NeedsConfirm(Skb skb) => skb.Conntrack is ConnEntry { IsConfirmed: false };

    /// <inheritdoc/>
    public bool TryConfirmQuick(Skb skb, double now)
    {
        if (skb.Conntrack is not ConnEntry ct || ct.IsConfirmed) return true;
        if (skb.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply) return true;
        if (ct.Has(ConnStatus.Dying)) return true;
        NoteSourceNat(ct);
        // A clash leaves the table as it was (expired holders aside, which Confirm would remove the same way): Confirm
        // then meets it again and explains the drop.
        return Table.TryInsert(ct, now);
    }

    public bool Confirm(PacketContext ctx)
    {
        Skb skb = ctx.Skb;
        if (skb.Conntrack is not ConnEntry ct || ct.IsConfirmed) return true;
        if (skb.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply) return true;
        if (ct.Has(ConnStatus.Dying)) return true;
        NoteSourceNat(ct);
        if (!Table.TryInsert(ct, ctx.Now))
        {
            ctx.Note("conntrack: another connection took the tuple first (insert clash): dropped");
            return false;
        }
        return true;
    }

    /// <summary>
    /// The conntrack hash slot of an arriving IPv4 TCP or UDP packet's tuple (default zone), fetched while the packet is
    /// parsed and checked: read from the bytes as they came (no options assumed beyond the IHL, no fragment); anything
    /// else is left alone. Only a hint: the lookup itself works from the parsed packet.
    /// </summary>
    public long Prefetch(ReadOnlySpan<byte> b)
    {
        if (!TrackV4 || b.Length < 20 || (b[0] >> 4) != 4) return -1;
        byte proto = b[9];
        if (proto is not (IpProtocol.Tcp or IpProtocol.Udp)) return -1;
        // A fragment (offset or more-fragments set) has no tuple of its own here.
        if ((b[6] & 0x3f) != 0 || b[7] != 0) return -1;
        int ihl = (b[0] & 0x0f) * 4;
        if (ihl < 20 || b.Length < ihl + 4) return -1;
        uint src = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b[12..]);
        uint dst = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b[16..]);
        ushort sport = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(b[ihl..]);
        ushort dport = System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(b[(ihl + 2)..]);
        long token = Table.PrefetchV4(proto, src, dst, sport, dport);
        // A TCP SYN without ACK opens a connection: the entry is not fetched ahead (ConntrackTable.PrefetchEntry).
        if (token >= 0 && proto == IpProtocol.Tcp && b.Length > ihl + 13 && (b[ihl + 13] & 0x12) == 0x02) token |= ConntrackTable.SynToken;
        return token;
    }

    /// <inheritdoc/>
    public void PrefetchMore(long token) => Table.PrefetchEntry(token);

    /// <inheritdoc/>
    public int Connections => Table.Count;

    /// <inheritdoc/>
    public void PacketStarts() => Table.PacketBoundary();

    /// <summary>
    /// For a new IPv4 connection about to be forwarded: the conntrack hash slots POSTROUTING will probe, fetched while
    /// FORWARD is walked. Its binding at POSTROUTING checks that the reply tuple it would give is free
    /// (nf_nat_used_tuple): without source NAT (the null binding) that is the connection's reply tuple as it is now, the
    /// one confirmation inserts; with MASQUERADE it is that tuple with the device's address as its destination (the
    /// address MASQUERADE chose last for this device and next hop, when known). Hints only: a wrong guess costs a fetch.
    /// </summary>
    public void PrefetchForward(Skb skb)
    {
        if (skb.Conntrack is not ConnEntry { IsConfirmed: false } ct || skb.CtInfo != CtInfo.New || ct.Family != IpFamily.V4
            || ct.Has(ConnStatus.SrcNatDone | ConnStatus.Dying)) return;
        ushort zone = ct.ZoneFor(ConnDirection.Reply);
        if (zone == 0 && ct.TryTupleV4(ConnDirection.Reply, out byte proto, out uint rs, out uint rd, out ushort rsp, out ushort rdp))
        {
            // The same slots from the entry's fields (PrefetchV4 hashes as Prefetch does a zone-0 IPv4 tuple). When the last
            // eight new connections all had their source changed (or none did), only the slot that outcome probes is fetched:
            // each fetch of a slot that is not probed costs a wait for its page walk.
            uint? masq4 = Nat.NatTargets.LastMasqueradeSource4(MasqueradeSource, skb.OutDev, skb.NextHop) is { } m4 && m4 != rd && m4 <= uint.MaxValue ? (uint)m4 : null;
            if (masq4 is null || _sourceNatHistory != 0xff) Table.PrefetchV4(proto, rs, rd, rsp, rdp);
            if (masq4 is { } m && _sourceNatHistory != 0) Table.PrefetchV4(proto, rs, m, rsp, rdp);
            return;
        }
        PrefetchForwardTuples(skb, ct, zone);
    }

    /// <summary>
    /// <see cref="PrefetchForward"/> by tuples (another zone, a connection without an IPv4 port tuple): a method of its own, so
    /// that the common case's frame has no 64-byte tuples to zero at every call.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private void PrefetchForwardTuples(Skb skb, ConnEntry ct, ushort zone)
    {
        ConnTuple reply = ct.Reply;
        Table.Prefetch(reply, zone);
        if (Nat.NatTargets.LastMasqueradeSource4(MasqueradeSource, skb.OutDev, skb.NextHop) is { } masq && masq != reply.Destination)
            Table.Prefetch(new ConnTuple(reply.Family, reply.Protocol, reply.Source, masq, reply.SourcePort, reply.DestinationPort), zone); // not `with`: see NatCore.FindBestIps
    }

    /// <summary>Whether the last eight connections confirmed had their source changed (a bit each, newest lowest): a hint for <see cref="PrefetchForward"/>.</summary>
    private byte _sourceNatHistory;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void NoteSourceNat(ConnEntry ct) => _sourceNatHistory = (byte)((_sourceNatHistory << 1) | (ct.Has(ConnStatus.SrcNat) ? 1 : 0));

    /// <summary>NAT (the Nat room): the nat table is walked for a connection's first packet at each nat hook.</summary>
    public bool NeedsNatRules(PacketContext ctx) => Tracks(ctx.Skb.Family) && Nat.NatHooks.NeedsRules(ctx);

    /// <summary>The binding (a null one when no rule made one) and the translation of every packet of a NATed connection.</summary>
    public bool ApplyNat(PacketContext ctx) => !Tracks(ctx.Skb.Family) || Nat.NatHooks.Apply(ctx, Table);

    /// <summary>
    /// nf_ct_attach: the answer belongs to its cause's connection, as RELATED in the other direction. REJECT's
    /// TCP reset attaches it in nf_send_reset; ICMP and ICMPv6 errors (REJECT, time exceeded, …) in
    /// icmp_glue_bits (net/ipv4/icmp.c) and icmpv6_getfrag (net/ipv6/icmp.c), also when the cause's connection
    /// was never confirmed (a NEW packet refused or expired in forwarding): such an error is RELATED at OUTPUT,
    /// as recorded on Linux 6.18 (tests/conformance; tests/tools/nat/record-icmp-attach.sh). NAT then translates
    /// it, or drops a redirect about a connection whose bindings are not both made yet. An invalid cause (no _nfct)
    /// gives nothing.
    /// </summary>
    public void Attach(Skb generated, Skb original)
    {
        if (original.Conntrack is not ConnEntry ct)
        {
            // An untracked cause still has a non-zero _nfct (IP_CT_UNTRACKED, no connection): nf_conntrack_attach
            // gives the answer RELATED with no connection, so CT --notrack leaves it alone (xt_CT: _nfct already
            // set) and state matches see INVALID until conntrack at OUTPUT tracks it afresh. Recorded on Linux
            // 6.18 (tests/conformance): a REJECT reply to an untracked local packet is INVALID in mangle OUTPUT.
            if (original.CtInfo == CtInfo.Untracked && original.Conntrack is null)
            {
                generated.Conntrack = null;
                generated.CtInfo = CtInfo.Related;
            }
            return;
        }
        generated.Conntrack = ct;
        generated.CtInfo = original.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply ? CtInfo.Related : CtInfo.RelatedReply;
    }

    /// <summary>The connection of the packet and its direction, for matches; false when untracked or invalid.</summary>
    public static bool TryGet(Skb skb, out ConnEntry ct, out ConnDirection dir)
    {
        if (skb.Conntrack is ConnEntry e && skb.CtInfo is not (CtInfo.None or CtInfo.Untracked))
        {
            ct = e;
            dir = skb.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply ? ConnDirection.Reply : ConnDirection.Original;
            return true;
        }
        ct = null!;
        dir = ConnDirection.Original;
        return false;
    }
}
