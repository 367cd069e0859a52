using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Conntrack;

/// <summary>
/// One direction of a connection (struct nf_conntrack_tuple): family, protocol, addresses and the
/// protocol's two 16-bit words. TCP, UDP, UDP-Lite, SCTP and DCCP keep their ports; ICMP and ICMPv6
/// keep the echo id in <see cref="SourcePort"/> and type and code in <see cref="DestinationPort"/>
/// (type &lt;&lt; 8 | code, as the kernel's dst.u.all reads); other protocols keep nothing (generic).
/// </summary>
public readonly record struct ConnTuple(IpFamily Family, byte Protocol, UInt128 Source, UInt128 Destination, ushort SourcePort, ushort DestinationPort)
{
    public bool IsIcmp => IsIcmpProtocol(Family, Protocol);

    /// <summary>Whether <paramref name="protocol"/> is the family's ICMP (whose tuples invert by type, not by swapping ports).</summary>
    public static bool IsIcmpProtocol(IpFamily family, byte protocol) => protocol == (family == IpFamily.V4 ? IpProtocol.Icmp : IpProtocol.Icmpv6);

    public byte IcmpType => (byte)(DestinationPort >> 8);

    public byte IcmpCode => (byte)DestinationPort;

    /// <summary>Protocols whose tuple holds ports (nf_ct_get_tuple_ports).</summary>
    public static bool HasPortTuple(byte protocol) =>
        protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.UdpLite or IpProtocol.Sctp or 33 /* DCCP */;

    /// <summary>The packet's tuple (nf_ct_get_tuple); false when its upper header is too short.</summary>
    public static bool TryFromPacket(Packet p, out ConnTuple tuple)
    {
        tuple = default;
        byte proto = p.Protocol;
        if (HasPortTuple(proto))
        {
            if (!p.HasPorts) return false;
            tuple = new ConnTuple(p.Family, proto, p.Source, p.Destination, p.SourcePort, p.DestinationPort);
            return true;
        }
        if (p.IsIcmp)
        {
            if (!p.HasTransportHeader) return false;
            tuple = new ConnTuple(p.Family, proto, p.Source, p.Destination, p.IcmpId, (ushort)((p.IcmpType << 8) | p.IcmpCode));
            return true;
        }
        if (proto == IpProtocol.Gre && !p.IsNonFirstFragment && p.TransportLength >= 8 && (p.Bytes[p.TransportOffset + 1] & 0x07) == 1)
        {
            // Enhanced GRE (version 1, PPTP): the call id is the destination key; the source key would come
            // from the PPTP helper's key map, which does not exist here (nf_conntrack_proto_gre.c).
            ushort callId = (ushort)((p.Bytes[p.TransportOffset + 6] << 8) | p.Bytes[p.TransportOffset + 7]);
            tuple = new ConnTuple(p.Family, proto, p.Source, p.Destination, 0, callId);
            return true;
        }
        // Version 0 GRE and every other protocol: addresses only (GRE "behaves like generic" with zero keys).
        tuple = new ConnTuple(p.Family, proto, p.Source, p.Destination, 0, 0);
        return true;
    }

    /// <summary>
    /// The other direction (nf_ct_invert_tuple). ICMP answers only the query types: echo, timestamp,
    /// information and address mask requests (icmp_invert_tuple in nf_conntrack_proto_icmp.c); ICMPv6 echo
    /// and node information (nf_conntrack_proto_icmpv6.c). Other types cannot be inverted.
    /// </summary>
    public bool TryInvert(out ConnTuple inverse)
    {
        inverse = default;
        if (IsIcmp)
        {
            int answer = InverseIcmpType(Family, IcmpType);
            if (answer < 0) return false;
            inverse = new ConnTuple(Family, Protocol, Destination, Source, SourcePort, (ushort)((answer << 8) | IcmpCode));
            return true;
        }
        inverse = new ConnTuple(Family, Protocol, Destination, Source, DestinationPort, SourcePort);
        return true;
    }

    /// <summary>The answering ICMP type for a query or an answer, or -1.</summary>
    public static int InverseIcmpType(IpFamily family, byte type)
    {
        if (family == IpFamily.V4)
        {
            return type switch
            {
                8 => 0, 0 => 8, 13 => 14, 14 => 13, 15 => 16, 16 => 15, 17 => 18, 18 => 17,
                _ => -1,
            };
        }
        return type switch
        {
            128 => 129, 129 => 128, 139 => 140, 140 => 139,
            _ => -1,
        };
    }

    /// <summary>ICMP types that may start a connection (valid_new in the icmp trackers).</summary>
    public static bool IcmpStartsConnection(IpFamily family, byte type) =>
        family == IpFamily.V4 ? type is 8 or 13 or 15 or 17 : type is 128 or 139;
}
