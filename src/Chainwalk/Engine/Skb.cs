using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>How the link layer addressed a received packet (the kernel's skb->pkt_type).</summary>
public enum PacketType : byte
{
    /// <summary>To us (PACKET_HOST).</summary>
    Host = 0,
    Broadcast = 1,
    Multicast = 2,

    /// <summary>To another host's MAC (PACKET_OTHERHOST; seen only in promiscuous mode).</summary>
    OtherHost = 3,

    /// <summary>Sent by us (PACKET_OUTGOING).</summary>
    Outgoing = 4,

    /// <summary>Looped back to us (PACKET_LOOPBACK; the kernel's pkttype match shows it as host).</summary>
    Loopback = 5,
}

/// <summary>The connection-tracking state of a packet, as <c>-m conntrack --ctstate</c> sees it (enum ip_conntrack_info plus untracked).</summary>
public enum CtInfo : byte
{
    /// <summary>No conntrack entry (conntrack not loaded, or the packet was not tracked): --ctstate INVALID.</summary>
    None = 0,
    Established,
    Related,
    New,
    EstablishedReply,
    RelatedReply,
    Untracked,
}

/// <summary>The owner of a locally generated packet's socket (what <c>-m owner</c> reads).</summary>
public sealed record SocketOwner(uint Uid, uint Gid)
{
    /// <summary>Supplementary groups (for <c>--suppl-groups</c>).</summary>
    public IReadOnlyList<uint> Groups { get; init; } = [];

    public static SocketOwner Root { get; } = new(0, 0);
}

/// <summary>
/// The packet in flight: the IP bytes and what the kernel keeps beside them in its sk_buff (interfaces,
/// mark, priority, MAC header, socket, conntrack). Matches read it; targets change it. After a target
/// changed the bytes it calls <see cref="Reparse"/>.
/// </summary>
public sealed class Skb
{
    public Skb(Packet packet) => Packet = packet;

    /// <summary>The IP packet (re-read after every change of its bytes).</summary>
    public Packet Packet { get; private set; }

    public IpFamily Family => Packet.Family;

    public byte[] Bytes => Packet.Bytes;

    /// <summary>The interface the packet arrived on, or null for a locally generated packet.</summary>
    public string? InDev { get; set; }

    /// <summary>The interface the packet leaves by, once routed (null before).</summary>
    public string? OutDev { get; set; }

    /// <summary>skb->mark (nfmark).</summary>
    public uint Mark { get; set; }

    /// <summary>skb->priority (CLASSIFY; the socket's SO_PRIORITY for local packets).</summary>
    public uint Priority { get; set; }

    /// <summary>skb->secmark (SECMARK).</summary>
    public uint Secmark { get; set; }

    /// <summary>skb->nf_trace, set by -j TRACE in the raw table.</summary>
    public bool Trace { get; set; }

    public PacketType PacketType { get; set; }

    /// <summary>The Ethernet header of a received packet (null for local packets or when unknown).</summary>
    public ulong? SourceMac { get; set; }

    public ulong? DestinationMac { get; set; }

    /// <summary>The Ethernet type of the MAC header (0x0800 / 0x86dd).</summary>
    public ushort EtherType => Family == IpFamily.V4 ? (ushort)0x0800 : (ushort)0x86dd;

    /// <summary>The socket of a locally generated packet; null for received and forwarded packets.</summary>
    public SocketOwner? Socket { get; set; }

    /// <summary>Bridge ports when the packet crossed a bridge with br_netfilter (physdev); null otherwise.</summary>
    public string? PhysInDev { get; set; }

    public string? PhysOutDev { get; set; }

    /// <summary>The routing realm (route classid) of the packet's route; 0 when none.</summary>
    public uint Realm { get; set; }

    /// <summary>The conntrack state the packet got in the conntrack hook (None until then / when not tracked).</summary>
    public CtInfo CtInfo { get; set; }

    /// <summary>The conntrack entry (a <c>Chainwalk.Conntrack</c> object) or null.</summary>
    public object? Conntrack { get; set; }

    /// <summary>The CPU the packet is processed on (-m cpu); a virtual host has one, CPU 0.</summary>
    public int Cpu { get; set; }

    /// <summary>
    /// The gateway of the route the packet carries (the kernel's rt_gw4 / rt6i_gateway): set at every routing decision
    /// (input route, output route, the re-route after OUTPUT, TEE's route to its gateway); zero when the route has no
    /// gateway (the destination is on link) or the packet is not routed yet. A gateway is never the all-zero address.
    /// </summary>
    public UInt128 RouteGateway { get; set; }

    /// <summary>
    /// rt_nexthop / rt6_nexthop (include/net/route.h, include/net/ip6_route.h): the route's gateway, else the packet's
    /// destination as it is now. MASQUERADE picks its IPv4 source for this address.
    /// </summary>
    public UInt128 NextHop => RouteGateway != UInt128.Zero ? RouteGateway : Packet.Destination;

    /// <summary>For a reassembled datagram, the largest fragment it was made of (IPCB(skb)->frag_max_size); 0 otherwise.</summary>
    public int FragMaxSize { get; set; }

    /// <summary>The IP total length, what counters add as bytes.</summary>
    public int Length => Packet.TotalLength;

    /// <summary>
    /// Makes this object the skb of another packet, every field as in a new one (the top-level skb that a reused
    /// <see cref="PacketResult"/> lends to the next packet: nothing keeps an skb after its packet's processing).
    /// </summary>
    internal void ResetFor(Packet packet)
    {
        // Usually the same packet object read again (the result's spare copy): a reference is stored only when it changes.
        if (!ReferenceEquals(Packet, packet)) Packet = packet;
        InDev = null;
        OutDev = null;
        Mark = 0;
        Priority = 0;
        Secmark = 0;
        Trace = false;
        PacketType = default;
        SourceMac = null;
        DestinationMac = null;
        Socket = null;
        PhysInDev = null;
        PhysOutDev = null;
        Realm = 0;
        CtInfo = default;
        Conntrack = null;
        Cpu = 0;
        RouteGateway = UInt128.Zero;
        FragMaxSize = 0;
        FlowPacket = 0;
        TupleHint = -1;
    }

    /// <summary>
    /// The flow path's view of this packet (<see cref="Netfilter.FlowPath"/>): 0 not asked yet, 1 the first established
    /// packet of its connection direction (walked and routed as before, nothing remembered), 2 a later one.
    /// </summary>
    internal byte FlowPacket;

    /// <summary>
    /// The conntrack hash of the packet's tuple as the arrival's prefetch computed it from the bytes (the token of
    /// <see cref="IConntrackHooks.Prefetch"/>), handed to the lookup by the one pass only, where nothing can have changed
    /// the bytes since (no raw rules walked); -1 none. The lookup clears it.
    /// </summary>
    internal long TupleHint = -1;

    /// <summary>Re-reads the bytes after a change (TTL, TOS, NAT, TCPMSS …), keeping the link-layer facts.</summary>
    /// <remarks>
    /// Changed in place and still one whole packet of the same length (the usual case), the facts are read again into
    /// the same <see cref="Wire.Packet"/>; otherwise the bytes are parsed afresh (a copy).
    /// </remarks>
    public void Reparse()
    {
        if (!Packet.TryReread()) Packet = Packet.Parse(Packet.Bytes);
    }

    /// <summary>
    /// <see cref="Reparse"/> after NAT rewrote the addresses, ports or ICMP id (and checksums) in place: only those
    /// facts are read again when the packet allows it, with the same result as a whole re-read.
    /// </summary>
    public void AddressesChanged()
    {
        if (!Packet.TryRereadAddresses()) Reparse();
    }

    /// <summary>Replaces the bytes (a target that grew or shrank the packet).</summary>
    public void Replace(byte[] bytes) => Packet = Packet.Parse(bytes);

    public Skb Clone() => new(Packet.Parse(Packet.Bytes.ToArray()))
    {
        InDev = InDev,
        OutDev = OutDev,
        Mark = Mark,
        Priority = Priority,
        Secmark = Secmark,
        Trace = Trace,
        PacketType = PacketType,
        SourceMac = SourceMac,
        DestinationMac = DestinationMac,
        Socket = Socket,
        PhysInDev = PhysInDev,
        PhysOutDev = PhysOutDev,
        Realm = Realm,
        CtInfo = CtInfo,
        Conntrack = Conntrack,
        Cpu = Cpu,
        RouteGateway = RouteGateway,
        FragMaxSize = FragMaxSize,
    };
}
