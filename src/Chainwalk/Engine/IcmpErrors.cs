using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// The ICMP and ICMPv6 errors the kernel sends about a packet (__icmp_send in net/ipv4/icmp.c, icmp6_send
/// in net/ipv6/icmp.c): when it sends one at all, from which address, with which TOS and TTL, and how
/// much of the offending packet it quotes. Used by routing errors, TTL expiry and REJECT.
/// </summary>
/// <remarks>
/// What the kernel randomises is left at zero: the IPv4 identification (ip_select_ident, the error is sent
/// without DF) and the IPv6 flow label (auto flow labels hash the flow). IP options of the offending packet
/// are not echoed (ip_options_echo). The global ICMP budget (icmp_msgs_per_sec) is not modelled; the
/// per-destination token bucket of IPv4 (icmpv4_xrlim_allow) is, when a <see cref="RuntimeState"/> is given.
/// </remarks>
public static class IcmpErrors
{
    public const int NetUnreachable = 0;
    public const int HostUnreachable = 1;
    public const int ProtocolUnreachable = 2;
    public const int PortUnreachable = 3;
    public const int NetProhibited = 9;
    public const int HostProhibited = 10;
    public const int AdminProhibited = 13;

    /// <summary>ICMP types that are errors (icmp_pointers[].error): no error is ever sent about one of them.</summary>
    private static bool IsIcmpV4Error(byte type) => type is 3 or 4 or 5 or 11 or 12;

    /// <summary>
    /// The error packet (IP header first), or null when the kernel sends none: about a non-first fragment
    /// (IPv4), about an ICMP error, about a packet not addressed to this host's MAC or to a broadcast /
    /// multicast address, or from an unspecified/multicast source.
    /// </summary>
    public static byte[]? Build(VirtualHost host, Skb about, byte type, byte code, uint info, RuntimeState? state = null)
    {
        Packet p = about.Packet;
        return p.Family == IpFamily.V4 ? Build4(host, about, p, type, code, info, state) : Build6(host, about, p, type, code, info, state);
    }

    /// <summary>skb->pkt_type == PACKET_HOST: locally generated packets are PACKET_HOST in the kernel too.</summary>
    private static bool IsPacketHost(Skb skb) => skb.PacketType is PacketType.Host or PacketType.Outgoing;

    private static byte[]? Build4(VirtualHost host, Skb about, Packet p, byte type, byte code, uint info, RuntimeState? state)
    {
        uint dst = (uint)p.Destination, src = (uint)p.Source;
        // rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST), then pkt_type != PACKET_HOST.
        if (dst == 0xffff_ffff || (dst >> 28) == 0xe) return null;
        if (RouteLookup.AddressType4(host, dst) == RouteType.Broadcast) return null;
        if (!IsPacketHost(about)) return null;
        if (p.IsNonFirstFragment) return null;
        if (p.Protocol == IpProtocol.Icmp && IsIcmpV4Error(type))
        {
            // An error about an ICMP message only for an informational one; an unreadable or unknown type gets none.
            if (p.TransportLength < 1 || p.Bytes.Length <= p.TransportOffset) return null;
            byte inner = p.Bytes[p.TransportOffset];
            if (inner > 18 || IsIcmpV4Error(inner)) return null;
        }
        if (src == 0 || (src >> 28) == 0xe || src == 0xffff_ffff) return null;

        // The source: the address the packet was sent to when its route was local (RTCF_LOCAL); otherwise,
        // with icmp_errors_use_inbound_ifaddr, an address of the inbound device; otherwise the route back picks.
        UInt128? from = null;
        if (RouteLookup.IsLocalAddress(host, IpFamily.V4, dst)) from = dst;
        else if (about.InDev is { } indev && host.GetSysctl("net.ipv4.icmp_errors_use_inbound_ifaddr") is "1")
            from = RouteLookup.SelectSource4(host, indev, src, 253);
        RouteResult back = RouteLookup.Output(host, new RouteQuery(IpFamily.V4, src));
        if (!back.Ok) return null;
        from ??= back.PreferredSource;
        if (from is null) return null;
        if (state is not null && !RateAllows4(host, state, back, src, type, code)) return null;

        // RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL; TTL from the route (ip_default_ttl); the ICMP socket has
        // IP_PMTUDISC_DONT, so no DF.
        byte tos = (byte)((p.Tos & 0x1e) | 0xc0);
        byte ttl = byte.TryParse(host.GetSysctl("net.ipv4.ip_default_ttl"), out byte t) ? t : (byte)64;
        // room = min(route MTU, 576) - IP header - ICMP header.
        int mtu = back.Device is { } dev ? host.FindLink(dev)?.Mtu ?? 1500 : 1500;
        int room = Math.Min(mtu, 576) - 20 - 8;
        int have = Math.Min(p.TotalLength, p.Bytes.Length);
        ReadOnlySpan<byte> quoted = p.Bytes.AsSpan(0, Math.Min(have, room));
        return PacketBuilder.Ipv4((uint)from.Value, src).Tos(tos).Ttl(ttl).DontFragment(false)
            .IcmpError(type, code, quoted, info).Build();
    }

    /// <summary>The per-destination state of icmpv4_xrlim_allow (inet_peer rate_tokens / rate_last), in seconds.</summary>
    /// <summary>An inet_peer's ICMP token bucket (rate_tokens, rate_last), kept with the host's runtime state.</summary>
    private sealed class PeerTokens : IRuntimeState
    {
        public double Tokens;
        public double Last = double.NegativeInfinity;

        public System.Text.Json.Nodes.JsonNode? Save() => double.IsNegativeInfinity(Last) ? null
            : new System.Text.Json.Nodes.JsonObject { ["tokens"] = Tokens, ["last"] = Last };

        public void Load(System.Text.Json.Nodes.JsonNode node)
        {
            Tokens = node["tokens"]?.GetValue<double>() ?? 0;
            Last = node["last"]?.GetValue<double>() ?? double.NegativeInfinity;
        }
    }

    /// <summary>inet_peer_xrlim_allow: tokens grow with time up to 6 × timeout; a message takes one timeout's worth.</summary>
    private static bool TakeToken(RuntimeState state, string key, double timeout)
    {
        PeerTokens peer = state.Get(key, () => new PeerTokens());
        double token = peer.Tokens + (state.Now - peer.Last);
        peer.Last = state.Now;
        if (token > 6 * timeout) token = 6 * timeout;
        bool ok = token >= timeout;
        if (ok) token -= timeout;
        peer.Tokens = token;
        return ok;
    }

    /// <summary>
    /// icmpv6_xrlim_allow: informational messages and "packet too big" are not limited, nor errors leaving by
    /// loopback; others take a token of the destination's bucket, whose timeout (net.ipv6.icmp.ratelimit, 1000 ms)
    /// is halved per 32 bits the route to the destination is shorter than /128 (tmo >>= (128 - plen) >> 5).
    /// </summary>
    private static bool RateAllows6(VirtualHost host, RuntimeState state, RouteResult back, UInt128 dst, byte type)
    {
        if (type >= 128 || type == 2) return true;
        if (back.Device == "lo") return true;
        int ms = int.TryParse(host.GetSysctl("net.ipv6.icmp.ratelimit"), out int v) ? v : 1000;
        int plen = back.Route?.PrefixLength ?? 128;
        if (plen < 128) ms >>= (128 - plen) >> 5;
        if (ms <= 0) return true;
        return TakeToken(state, "icmp6-peer:" + IpNet.FormatAddress(dst, IpFamily.V6), ms / 1000.0);
    }

    /// <summary>
    /// icmpv4_xrlim_allow: types outside icmp_ratemask (default 0x1818: 3, 4, 11, 12) and "fragmentation needed"
    /// are not limited, nor errors that leave by loopback; others take a token of the destination's bucket
    /// (icmp_ratelimit, 1000 ms, a burst of 6).
    /// </summary>
    private static bool RateAllows4(VirtualHost host, RuntimeState state, RouteResult back, uint dst, byte type, byte code)
    {
        int mask = int.TryParse(host.GetSysctl("net.ipv4.icmp_ratemask"), out int m) ? m : 0x1818;
        if (type > 18 || (mask & (1 << type)) == 0) return true;
        if (type == 3 && code == 4) return true;
        if (back.Device == "lo") return true;
        double timeout = (int.TryParse(host.GetSysctl("net.ipv4.icmp_ratelimit"), out int ms) ? ms : 1000) / 1000.0;
        if (timeout <= 0) return true;
        return TakeToken(state, "icmp-peer:" + IpNet.FormatAddress(dst, IpFamily.V4), timeout);
    }

    private static byte[]? Build6(VirtualHost host, Skb about, Packet p, byte type, byte code, uint info, RuntimeState? state)
    {
        UInt128 dst = p.Destination, src = p.Source;
        UInt128? from = RouteLookup.IsLocalAddress(host, IpFamily.V6, dst) ? dst : null;
        bool dstMulticast = (dst >> 120) == 0xff;
        // icmp6_send: about multicast or not-for-us packets only "packet too big" and unknown options (param problem code 2).
        if (dstMulticast || !IsPacketHost(about))
        {
            if (!(type == 2 || (type == 4 && code == 2))) return null;
            from = null;
        }
        if (src == 0 || (src >> 120) == 0xff) return null;
        if (IsIneligible6(p)) return null;

        RouteResult back = RouteLookup.Output(host, new RouteQuery(IpFamily.V6, src));
        if (!back.Ok) return null;
        if (state is not null && !RateAllows6(host, state, back, src, type)) return null;
        // icmp6_send: a route's own prefsrc (icmpv6_rt_has_prefsrc), else the source selected for the packet's
        // input device (ipv6_dev_get_saddr on parm->iif), not the output one: an error about a packet that came in
        // on eth1 from a host behind eth0 leaves by eth0 with eth1's address (recorded on Linux 6.18, tests/conformance).
        from ??= back.Route?.Src ?? RouteLookup.SelectSource6(host, about.InDev ?? back.Device, src);
        if (from is null) return null;
        // ip6_dst_hoplimit: the out device's hop_limit, else the default one. Traffic class 0 (the ICMPv6 socket's).
        string? hl = back.Device is { } d ? host.GetSysctl($"net.ipv6.conf.{d}.hop_limit") : null;
        byte hops = byte.TryParse(hl ?? host.GetSysctl("net.ipv6.conf.all.hop_limit"), out byte h) ? h : (byte)64;
        int have = Math.Min(p.TotalLength, p.Bytes.Length);
        ReadOnlySpan<byte> quoted = p.Bytes.AsSpan(0, Math.Min(have, 1280 - 40 - 8));
        return PacketBuilder.Ipv6(from.Value, src).Ttl(hops).IcmpError(type, code, quoted, info).Build();
    }

    /// <summary>
    /// is_ineligible (net/ipv6/icmp.c): never answer an ICMPv6 error, or a packet whose ICMPv6 type cannot be read
    /// (unless it is a non-first fragment). A non-first fragment's upper layer is not known, so it is eligible.
    /// </summary>
    private static bool IsIneligible6(Packet p)
    {
        (int off, byte next, bool laterFragment) = Ipv6Upper(p.Bytes.AsSpan(0, Math.Min(p.TotalLength, p.Bytes.Length)));
        if (off < 0 || laterFragment) return false;
        if (next != IpProtocol.Icmpv6) return false;
        if (off >= Math.Min(p.TotalLength, p.Bytes.Length)) return true;
        return (p.Bytes[off] & 0x80) == 0;
    }

    /// <summary>
    /// ipv6_skip_exthdr from the fixed header: the upper layer's offset and protocol; at a fragment header of a
    /// non-first fragment it stops there (protocol 44, <c>LaterFragment</c>). Offset -1 when a header is cut off.
    /// </summary>
    public static (int Offset, byte Protocol, bool LaterFragment) Ipv6Upper(ReadOnlySpan<byte> b)
    {
        if (b.Length < 40) return (-1, 0, false);
        byte next = b[6];
        int off = 40;
        while (next is IpProtocol.HopByHop or IpProtocol.Routing or IpProtocol.Fragment or IpProtocol.Ah
               or IpProtocol.DestinationOptions or IpProtocol.NoNextHeader)
        {
            if (next == IpProtocol.NoNextHeader) return (off, next, false);
            if (b.Length < off + 8) return (-1, next, false);
            int len;
            if (next == IpProtocol.Fragment)
            {
                ushort fo = (ushort)((b[off + 2] << 8) | b[off + 3]);
                if ((fo & 0xfff8) != 0) return (off, next, true);
                len = 8;
            }
            else if (next == IpProtocol.Ah)
            {
                len = (b[off + 1] + 2) * 4;
            }
            else
            {
                len = (b[off + 1] + 1) * 8;
            }
            next = b[off];
            off += len;
        }
        return (off, next, false);
    }
}
