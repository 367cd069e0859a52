using System.Buffers.Binary;
using Chainwalk.Conntrack;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Nat;

/// <summary>
/// Rewriting a packet to its binding (net/netfilter/nf_nat_proto.c): the transport part first (ports, the ICMP
/// query id) with its checksum adjusted incrementally for the address and the port (UDP's zero checksum left
/// alone, a result of zero written as 0xffff; SCTP's CRC32c recomputed), then the IPv4 header's address and
/// checksum. The same code rewrites the packet quoted inside an ICMP error, where only 8 bytes of the
/// transport header may be there (the checksum is then not touched).
/// </summary>
public static class NatPacket
{
    /// <summary>
    /// nf_nat_ipv4_manip_pkt / nf_nat_ipv6_manip_pkt: makes the IP packet at <paramref name="ipOffset"/> carry
    /// <paramref name="target"/>'s source (or destination) address and port. <paramref name="length"/> is the
    /// length of the whole outer packet (skb->len). False when a header is cut short (the kernel drops).
    /// </summary>
    public static bool Manip(Span<byte> b, int ipOffset, int length, in ConnTuple target, NatManip manip)
    {
        if (target.Family == IpFamily.V4)
        {
            if (target.Protocol is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.UdpLite)
                return ManipV4(b, ipOffset, length, target.Protocol, (uint)(manip == NatManip.Src ? target.Source : target.Destination),
                    manip == NatManip.Src ? target.SourcePort : target.DestinationPort, manip);
            if (length < ipOffset + 20) return false;
            int hdroff = ipOffset + (b[ipOffset] & 0x0f) * 4;
            if (!L4Manip(b, ipOffset, hdroff, length, target, manip)) return false;
            int addrOff = ipOffset + (manip == NatManip.Src ? 12 : 16);
            uint oldIp = BinaryPrimitives.ReadUInt32BigEndian(b[addrOff..]);
            uint newIp = (uint)(manip == NatManip.Src ? target.Source : target.Destination);
            WriteCheck(b, ipOffset + 10, Replace(ReadCheck(b, ipOffset + 10), oldIp, newIp));
            BinaryPrimitives.WriteUInt32BigEndian(b[addrOff..], newIp);
            return true;
        }
        if (length < ipOffset + 40) return false;
        int off = SkipExtensionHeaders(b, ipOffset, length, out bool firstFragment);
        if (off >= 0 && firstFragment && !L4Manip(b, ipOffset, off, length, target, manip)) return false;
        WriteAddress6(b, ipOffset + (manip == NatManip.Src ? 8 : 24), manip == NatManip.Src ? target.Source : target.Destination);
        return true;
    }

    /// <summary>
    /// <see cref="Manip"/> of an IPv4 TCP, UDP or UDP-Lite packet at <paramref name="ipOffset"/> to a known address and
    /// port: the one implementation of it, used by <see cref="Manip"/> (the port, the transport checksum for the pseudo
    /// header's address and the port, then the IP header's address and checksum) and by an established connection's
    /// rewrite, which reads the binding from the entry's fields (<see cref="ConnEntry.TryNatTargetV4"/>) instead of a tuple.
    /// </summary>
    public static bool ManipV4(Span<byte> b, int ipOffset, int length, byte protocol, uint newIp, ushort newPort, NatManip manip)
    {
        if (ipOffset < 0 || length < ipOffset + 20 || b.Length < length) return false;
        // Every offset below lies inside [ipOffset, length) once the checks before its use passed (the IP header's 20 bytes,
        // then the transport header's 8 or 20): read and written by reference, without a slice and a bounds check per field.
        ref byte b0 = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(b);
        int hdroff = ipOffset + (b[ipOffset] & 0x0f) * 4;
        int addrOff = ipOffset + (manip == NatManip.Src ? 12 : 16);
        int portOff = hdroff + (manip == NatManip.Src ? 0 : 2);
        uint oldIp = Load32(ref b0, addrOff);
        // csum_replace4 for the address, then csum_replace2 for the port, folded once: each step's result is the one value
        // of the sum's class modulo 0xffff that is not 0xffff (Fold of a non-zero sum), and a result read back as ~check
        // into the next step stays in its class, so one fold of the summed changes writes the steps' bytes (see
        // RewriteEstablishedV4; NatManipV4Tests checks it against the steps).
        ulong ipDelta = (ulong)~oldIp + newIp;
        if (protocol == IpProtocol.Tcp)
        {
            // Conntrack guarantees 8 bytes; the checksum is only there with the whole 20.
            int hdrsize = length >= hdroff + 20 ? 20 : 8;
            if (length < hdroff + hdrsize) return false;
            ushort oldPort = Load16(ref b0, portOff);
            Store16(ref b0, portOff, newPort);
            if (hdrsize == 20)
                Store16(ref b0, hdroff + 16, Fold((0xffff0000u | (ushort)~Load16(ref b0, hdroff + 16)) + ipDelta + (ulong)~(uint)oldPort + newPort));
        }
        else if (protocol is IpProtocol.Udp or IpProtocol.UdpLite)
        {
            if (length < hdroff + 8) return false;
            ushort oldPort = Load16(ref b0, portOff);
            // A UDP checksum of zero means "none" and stays so; UDP-Lite always has one.
            ushort check = Load16(ref b0, hdroff + 6);
            if (protocol == IpProtocol.UdpLite || check != 0)
            {
                ushort c = Fold((0xffff0000u | (ushort)~check) + ipDelta + (ulong)~(uint)oldPort + newPort);
                Store16(ref b0, hdroff + 6, c == 0 ? (ushort)0xffff : c);
            }
            Store16(ref b0, portOff, newPort);
        }
        else
        {
            return false;
        }
        Store16(ref b0, ipOffset + 10, Fold((0xffff0000u | (ushort)~Load16(ref b0, ipOffset + 10)) + ipDelta));
        Store32(ref b0, addrOff, newIp);
        return true;
    }

    // Network-order loads and stores at an offset the caller has checked (ManipV4).
    private static ushort Load16(ref byte b, int offset) =>
        BinaryPrimitives.ReverseEndianness(System.Runtime.CompilerServices.Unsafe.ReadUnaligned<ushort>(ref System.Runtime.CompilerServices.Unsafe.Add(ref b, offset)));

    private static uint Load32(ref byte b, int offset) =>
        BinaryPrimitives.ReverseEndianness(System.Runtime.CompilerServices.Unsafe.ReadUnaligned<uint>(ref System.Runtime.CompilerServices.Unsafe.Add(ref b, offset)));

    private static void Store16(ref byte b, int offset, ushort value) =>
        System.Runtime.CompilerServices.Unsafe.WriteUnaligned(ref System.Runtime.CompilerServices.Unsafe.Add(ref b, offset), BinaryPrimitives.ReverseEndianness(value));

    private static void Store32(ref byte b, int offset, uint value) =>
        System.Runtime.CompilerServices.Unsafe.WriteUnaligned(ref System.Runtime.CompilerServices.Unsafe.Add(ref b, offset), BinaryPrimitives.ReverseEndianness(value));

    /// <summary>
    /// The one pass's rewrite of an established IPv4 TCP or UDP packet (Engine/OnePass.cs): what the slow path does in
    /// three steps — the destination manip at PREROUTING (<see cref="ManipV4"/>), ip_decrease_ttl in ip_forward, the source
    /// manip at POSTROUTING or INPUT — with each checksum updated once by the sum of all the changes. The bytes are the
    /// same: every step's incremental update (csum_replace4 / _replace2, and ip_decrease_ttl's add with its carry) writes
    /// the one checksum of the sum's class that is not 0xffff, whatever the value it started from, so one update by the
    /// summed changes ends at the same value as the steps one after the other; a UDP checksum of zero stays zero and one
    /// that comes out zero is written 0xffff, as after each step. The caller checked that the transport header is whole
    /// (20 bytes of TCP, 8 of UDP) and the packet IPv4.
    /// </summary>
    public static void RewriteEstablishedV4(Span<byte> b, byte protocol, bool src, uint newSrc, ushort newSrcPort,
        bool dst, uint newDst, ushort newDstPort, bool decrementTtl)
    {
        int hdroff = (b[0] & 0x0f) * 4;
        uint oldSrc = BinaryPrimitives.ReadUInt32BigEndian(b[12..]);
        uint oldDst = BinaryPrimitives.ReadUInt32BigEndian(b[16..]);
        // Each change as csum_replace adds it: ~from + to, 32-bit words (16-bit values widened).
        ulong ipDelta = 0, l4Delta = 0;
        if (src)
        {
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b[hdroff..]);
            ipDelta += (ulong)~oldSrc + newSrc;
            l4Delta += (ulong)~oldSrc + newSrc + (ulong)~(uint)oldPort + newSrcPort;
            BinaryPrimitives.WriteUInt32BigEndian(b[12..], newSrc);
            BinaryPrimitives.WriteUInt16BigEndian(b[hdroff..], newSrcPort);
        }
        if (dst)
        {
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b[(hdroff + 2)..]);
            ipDelta += (ulong)~oldDst + newDst;
            l4Delta += (ulong)~oldDst + newDst + (ulong)~(uint)oldPort + newDstPort;
            BinaryPrimitives.WriteUInt32BigEndian(b[16..], newDst);
            BinaryPrimitives.WriteUInt16BigEndian(b[(hdroff + 2)..], newDstPort);
        }
        if (decrementTtl)
        {
            // The TTL is the high byte of the header's fifth word (TTL, protocol).
            uint oldWord = (uint)((b[8] << 8) | b[9]);
            ipDelta += (ulong)~oldWord + (oldWord - 0x100);
            b[8]--;
        }
        if (src || dst) AddTransportDelta(b, hdroff, protocol, l4Delta);
        if (src || dst || decrementTtl) WriteCheck(b, 10, Fold((0xffff0000u | (ushort)~ReadCheck(b, 10)) + ipDelta));
    }

    /// <summary>
    /// <see cref="RewriteEstablishedV4"/> for IPv6 without extension headers (the transport header at 40): the destination
    /// and source manips (<see cref="Manip"/>: the port, the transport checksum for the pseudo header's address
    /// (inet_proto_csum_replace16) and the port) and ip6_forward's hop limit decrement (no header checksum), the
    /// transport checksum updated once by the sum of the changes: the same bytes as the steps one after the other.
    /// </summary>
    public static void RewriteEstablishedV6(Span<byte> b, byte protocol, bool src, UInt128 newSrc, ushort newSrcPort,
        bool dst, UInt128 newDst, ushort newDstPort, bool decrementHopLimit)
    {
        const int hdroff = 40;
        ulong l4Delta = 0;
        if (src)
        {
            UInt128 oldSrc = BinaryPrimitives.ReadUInt128BigEndian(b[8..]);
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b[hdroff..]);
            l4Delta += Delta128(oldSrc, newSrc) + (ulong)~(uint)oldPort + newSrcPort;
            WriteAddress6(b, 8, newSrc);
            BinaryPrimitives.WriteUInt16BigEndian(b[hdroff..], newSrcPort);
        }
        if (dst)
        {
            UInt128 oldDst = BinaryPrimitives.ReadUInt128BigEndian(b[24..]);
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b[(hdroff + 2)..]);
            l4Delta += Delta128(oldDst, newDst) + (ulong)~(uint)oldPort + newDstPort;
            WriteAddress6(b, 24, newDst);
            BinaryPrimitives.WriteUInt16BigEndian(b[(hdroff + 2)..], newDstPort);
        }
        if (decrementHopLimit) b[7]--;
        if (src || dst) AddTransportDelta(b, hdroff, protocol, l4Delta);
    }

    /// <summary>
    /// The TCP or UDP checksum of the transport header at <paramref name="hdroff"/> updated by the sum of the changes
    /// (<paramref name="delta"/>: ~from + to per word); a UDP checksum of zero means "none" and stays so, one that comes out
    /// zero is written 0xffff.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void AddTransportDelta(Span<byte> b, int hdroff, byte protocol, ulong delta)
    {
        int checkOff = hdroff + (protocol == IpProtocol.Tcp ? 16 : 6);
        ushort check = ReadCheck(b, checkOff);
        if (protocol != IpProtocol.Tcp && check == 0) return;
        ushort c = Fold((0xffff0000u | (ushort)~check) + delta);
        WriteCheck(b, checkOff, protocol != IpProtocol.Tcp && c == 0 ? (ushort)0xffff : c);
    }

    /// <summary>An IPv6 address's change as <see cref="Replace128"/> adds it: ~from + to, word by word.</summary>
    private static ulong Delta128(UInt128 from, UInt128 to)
    {
        ulong sum = 0;
        for (int i = 0; i < 4; i++)
        {
            sum += ~(uint)(from >> (96 - 32 * i));
            sum += (uint)(to >> (96 - 32 * i));
        }
        return sum;
    }

    /// <summary>ipv6_skip_exthdr from the fixed header: the upper-layer offset (-1 when none), and whether it is a first fragment.</summary>
    private static int SkipExtensionHeaders(ReadOnlySpan<byte> b, int ipOffset, int length, out bool firstFragment)
    {
        firstFragment = true;
        byte next = b[ipOffset + 6];
        int off = ipOffset + 40;
        while (next is 0 or 43 or 44 or 60 or 51 or 59)
        {
            if (next == 59 || off + 8 > length) return -1;
            int hdrlen;
            if (next == 44)
            {
                ushort fragOff = BinaryPrimitives.ReadUInt16BigEndian(b[(off + 2)..]);
                if ((fragOff & ~7) != 0)
                {
                    firstFragment = false;
                    next = b[off];
                    break;
                }
                hdrlen = 8;
            }
            else if (next == 51)
            {
                hdrlen = (b[off + 1] + 2) << 2;
            }
            else
            {
                hdrlen = (b[off + 1] + 1) << 3;
            }
            next = b[off];
            off += hdrlen;
        }
        return off;
    }

    /// <summary>l4proto_manip_pkt: by the target's protocol (IPv4 TCP/UDP go through <see cref="ManipV4"/> instead).</summary>
    private static bool L4Manip(Span<byte> b, int ipOffset, int hdroff, int length, in ConnTuple t, NatManip manip)
    {
        switch (t.Protocol)
        {
            case IpProtocol.Tcp:
                {
                    // Conntrack guarantees 8 bytes; the checksum is only there with the whole 20.
                    int hdrsize = length >= hdroff + 20 ? 20 : 8;
                    if (length < hdroff + hdrsize) return false;
                    int portOff = hdroff + (manip == NatManip.Src ? 0 : 2);
                    ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b[portOff..]);
                    ushort newPort = manip == NatManip.Src ? t.SourcePort : t.DestinationPort;
                    BinaryPrimitives.WriteUInt16BigEndian(b[portOff..], newPort);
                    if (hdrsize < 20) return true;
                    AddressChecksum(b, ipOffset, hdroff + 16, t, manip);
                    WriteCheck(b, hdroff + 16, Replace(ReadCheck(b, hdroff + 16), oldPort, newPort));
                    return true;
                }
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
                {
                    if (length < hdroff + 8) return false;
                    int portOff = hdroff + (manip == NatManip.Src ? 0 : 2);
                    ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b[portOff..]);
                    ushort newPort = manip == NatManip.Src ? t.SourcePort : t.DestinationPort;
                    // A UDP checksum of zero means "none" and stays so; UDP-Lite always has one.
                    bool doCsum = t.Protocol == IpProtocol.UdpLite || ReadCheck(b, hdroff + 6) != 0;
                    if (doCsum)
                    {
                        AddressChecksum(b, ipOffset, hdroff + 6, t, manip);
                        ushort c = Replace(ReadCheck(b, hdroff + 6), oldPort, newPort);
                        WriteCheck(b, hdroff + 6, c == 0 ? (ushort)0xffff : c);
                    }
                    BinaryPrimitives.WriteUInt16BigEndian(b[portOff..], newPort);
                    return true;
                }
            case IpProtocol.Sctp:
                {
                    int hdrsize = length >= hdroff + SctpHeader.Length ? SctpHeader.Length : 8;
                    if (length < hdroff + hdrsize) return false;
                    int portOff = hdroff + (manip == NatManip.Src ? 0 : 2);
                    BinaryPrimitives.WriteUInt16BigEndian(b[portOff..], manip == NatManip.Src ? t.SourcePort : t.DestinationPort);
                    if (hdrsize < SctpHeader.Length) return true;
                    // sctp_compute_cksum over everything from the SCTP header to the end of the skb.
                    if (SctpHeader.TryCreate(b[hdroff..length], out SctpHeader sctp)) sctp.UpdateChecksum();
                    return true;
                }
            case 33: // DCCP
                {
                    int hdrsize = length >= hdroff + 12 ? 12 : 8;
                    if (length < hdroff + hdrsize) return false;
                    int portOff = hdroff + (manip == NatManip.Src ? 0 : 2);
                    ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b[portOff..]);
                    ushort newPort = manip == NatManip.Src ? t.SourcePort : t.DestinationPort;
                    BinaryPrimitives.WriteUInt16BigEndian(b[portOff..], newPort);
                    if (hdrsize < 12) return true;
                    AddressChecksum(b, ipOffset, hdroff + 6, t, manip);
                    WriteCheck(b, hdroff + 6, Replace(ReadCheck(b, hdroff + 6), oldPort, newPort));
                    return true;
                }
            case IpProtocol.Icmp when t.Family == IpFamily.V4:
                {
                    if (length < hdroff + 8) return false;
                    // Only the query types carry an id (an error's bytes 4-7 are not one).
                    if (b[hdroff] is not (8 or 0 or 13 or 14 or 15 or 16 or 17 or 18)) return true;
                    ushort oldId = BinaryPrimitives.ReadUInt16BigEndian(b[(hdroff + 4)..]);
                    WriteCheck(b, hdroff + 2, Replace(ReadCheck(b, hdroff + 2), oldId, t.SourcePort));
                    BinaryPrimitives.WriteUInt16BigEndian(b[(hdroff + 4)..], t.SourcePort);
                    return true;
                }
            case IpProtocol.Icmpv6 when t.Family == IpFamily.V6:
                {
                    if (length < hdroff + 8) return false;
                    AddressChecksum(b, ipOffset, hdroff + 2, t, manip);
                    if (b[hdroff] is 128 or 129)
                    {
                        ushort oldId = BinaryPrimitives.ReadUInt16BigEndian(b[(hdroff + 4)..]);
                        WriteCheck(b, hdroff + 2, Replace(ReadCheck(b, hdroff + 2), oldId, t.SourcePort));
                        BinaryPrimitives.WriteUInt16BigEndian(b[(hdroff + 4)..], t.SourcePort);
                    }
                    return true;
                }
            case IpProtocol.Gre:
                {
                    if (length < hdroff + 8) return false;
                    // Only the destination has a key in the packet (the call id of enhanced GRE).
                    if (manip != NatManip.Dst) return true;
                    switch (b[hdroff + 1] & 0x07)
                    {
                        case 0:
                            return true;
                        case 1:
                            BinaryPrimitives.WriteUInt16BigEndian(b[(hdroff + 6)..], t.DestinationPort);
                            return true;
                        default:
                            return false;
                    }
                }
            default:
                return true;
        }
    }

    /// <summary>nf_csum_update: the pseudo header's address in a transport checksum, from the IP header's current one to the target's.</summary>
    private static void AddressChecksum(Span<byte> b, int ipOffset, int checkOffset, in ConnTuple t, NatManip manip)
    {
        ushort check = ReadCheck(b, checkOffset);
        if (t.Family == IpFamily.V4)
        {
            uint oldIp = BinaryPrimitives.ReadUInt32BigEndian(b[(ipOffset + (manip == NatManip.Src ? 12 : 16))..]);
            uint newIp = (uint)(manip == NatManip.Src ? t.Source : t.Destination);
            WriteCheck(b, checkOffset, Replace(check, oldIp, newIp));
            return;
        }
        UInt128 oldAddr = BinaryPrimitives.ReadUInt128BigEndian(b[(ipOffset + (manip == NatManip.Src ? 8 : 24))..]);
        UInt128 newAddr = manip == NatManip.Src ? t.Source : t.Destination;
        WriteCheck(b, checkOffset, Replace128(check, oldAddr, newAddr));
    }

    private static void WriteAddress6(Span<byte> b, int offset, UInt128 addr) => BinaryPrimitives.WriteUInt128BigEndian(b[offset..], addr);

    private static ushort ReadCheck(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt16BigEndian(b[offset..]);

    private static void WriteCheck(Span<byte> b, int offset, ushort value) => BinaryPrimitives.WriteUInt16BigEndian(b[offset..], value);

    /// <summary>
    /// inet_proto_csum_replace4 / csum_replace4 (and _replace2 with the 16-bit values widened): the folded sum of
    /// ~checksum, ~from and to as 32-bit words, complemented. The widened words carry 0xffff halves, which keep a
    /// zero sum from folding to +0, as the kernel's arithmetic does.
    /// </summary>
    public static ushort Replace(ushort check, uint from, uint to)
    {
        ulong sum = (0xffff0000u | (ushort)~check) + (ulong)~from + to;
        return Fold(sum);
    }

    /// <summary>inet_proto_csum_replace16: an IPv6 address in a transport checksum.</summary>
    public static ushort Replace128(ushort check, UInt128 from, UInt128 to)
    {
        ulong sum = 0xffff0000u | (ushort)~check;
        for (int i = 0; i < 4; i++)
        {
            sum += ~(uint)(from >> (96 - 32 * i));
            sum += (uint)(to >> (96 - 32 * i));
        }
        return Fold(sum);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static ushort Fold(ulong sum)
    {
        while ((sum >> 32) != 0) sum = (sum & 0xffffffff) + (sum >> 32);
        uint s = (uint)sum;
        s = (s & 0xffff) + (s >> 16);
        s = (s & 0xffff) + (s >> 16);
        return (ushort)~s;
    }

    /// <summary>The ICMP / ICMPv6 checksum over the message from <paramref name="offset"/> to <paramref name="length"/>, computed afresh.</summary>
    internal static void RecomputeIcmp(Span<byte> b, int offset, int length, IpFamily family)
    {
        WriteCheck(b, offset + 2, 0);
        ushort sum = family == IpFamily.V4
            ? Checksum.Compute(b[offset..length])
            : TransportChecksum.Compute(b[offset..length], b.Slice(8, 16), b.Slice(24, 16), IpProtocol.Icmpv6);
        WriteCheck(b, offset + 2, sum);
    }
}
