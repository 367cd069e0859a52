using System.Buffers.Binary;
using Chainwalk.Wire;
using Xunit;

namespace Chainwalk.Tests.Wire;

public class ViewTests
{
    // IPv6(src=A6, dst=B6)/IPv6ExtHdrRouting(addresses=['2001:db8::3'])/AH(spi=1, seq=1, icv=b'\x00' * 12)/UDP(sport=7, dport=9)
    private const string RoutingAhUdp = "6000000000382b4020010db800000000000000000000000120010db8000000000000000000000002"
        + "330200010000000020010db8000000000000000000000003" + "110400000000000100000001000000000000000000000000" + "0007000900080000";

    // IP(src=A, dst=B, id=0)/TCP(sport=1, dport=2, flags='A', seq=1, ack=1, window=100, options=[('NOP', None), ('NOP', None), ('SAck', (1000, 2000, 3000, 4000))])
    private const string TcpSack = "4500003c00000000400666ba0a0000010a000002000100020000000100000001a01000641e32000001010512000003e8000007d000000bb800000fa0";

    [Fact]
    public void Extension_walker_steps_over_routing_and_ah_to_udp()
    {
        byte[] b = Convert.FromHexString(RoutingAhUdp);
        var walk = new Ipv6ExtensionEnumerator(b);
        var seen = new List<Ipv6ExtensionHeader>();
        while (walk.MoveNext()) seen.Add(walk.Current);
        Assert.Equal([new(IpProtocol.Routing, 40, 24, IpProtocol.Ah), new(IpProtocol.Ah, 64, 24, IpProtocol.Udp)], seen);
        Assert.False(walk.Truncated);
        Assert.True(Ipv6Extensions.TryFindUpperLayer(b, out Ipv6UpperLayer upper));
        Assert.Equal(new Ipv6UpperLayer(IpProtocol.Udp, 88, false, 0, false, 0), upper);
        Packet p = Packet.Parse(b);
        // tcpdump 4.99.3 gives up after the AH header; Chainwalk goes on in the same style.
        Assert.Equal("IP6 2001:db8::1 > 2001:db8::2: RT6 (len=2, type=0, segleft=1) AH(spi=0x00000001,seq=0x1): 7 > 9: UDP, length 0", p.ToString());
    }

    public static TheoryData<string, string, byte, int> UpperLayers() => new()
    {
        // scenario, extension bytes after a fixed header whose next header is the first byte, protocol, offset
        { "no extension headers: tcp", "06", IpProtocol.Tcp, 40 },
        { "no next header", "3b", IpProtocol.NoNextHeader, 40 },
        { "hop-by-hop then no next header", "00" + "3b00000000000000", IpProtocol.NoNextHeader, 48 },
        { "destination options 16 bytes then icmpv6", "3c" + "3a01000000000000" + "0000000000000000", IpProtocol.Icmpv6, 56 },
        { "atomic fragment then tcp", "2c" + "0600000000000007", IpProtocol.Tcp, 48 },
        { "esp ends the walk", "32", IpProtocol.Esp, 40 },
    };

    [Theory]
    [MemberData(nameof(UpperLayers))]
    public void Extension_walker_finds_the_upper_layer(string scenario, string hex, byte protocol, int offset)
    {
        byte[] ext = Convert.FromHexString(hex);
        byte[] b = new byte[40 + ext.Length - 1];
        b[0] = 0x60;
        b[6] = ext[0];
        ext.AsSpan(1).CopyTo(b.AsSpan(40));
        Assert.True(Ipv6Extensions.TryFindUpperLayer(b, out Ipv6UpperLayer upper), scenario);
        Assert.Equal((protocol, offset), (upper.Protocol, upper.Offset));
    }

    [Fact]
    public void Extension_walker_reports_the_fragment_header_and_stops_after_a_later_fragment()
    {
        byte[] b = new byte[40 + 8 + 8];
        b[0] = 0x60;
        b[6] = IpProtocol.Fragment;
        // next header hop-by-hop (what follows a later fragment is data, not a header), offset 185 (1480 bytes), M=1, id 0xdeadbeef
        Convert.FromHexString("000005c9deadbeef").CopyTo(b, 40);
        Assert.True(Ipv6Extensions.TryFindUpperLayer(b, out Ipv6UpperLayer upper));
        Assert.Equal(new Ipv6UpperLayer(IpProtocol.HopByHop, 48, true, 185, true, 0xdeadbeef), upper);
        Assert.True(upper.IsNonFirstFragment);
    }

    [Theory]
    [InlineData("00")] // hop-by-hop announced, nothing follows
    [InlineData("00" + "0601000000000000")] // hop-by-hop says 16 bytes, 8 present
    [InlineData("33" + "0604000000000000")] // AH says 24 bytes, 8 present
    public void Extension_walker_refuses_a_header_that_does_not_fit(string hex)
    {
        byte[] ext = Convert.FromHexString(hex);
        byte[] b = new byte[40 + ext.Length - 1];
        b[0] = 0x60;
        b[6] = ext[0];
        ext.AsSpan(1).CopyTo(b.AsSpan(40));
        Assert.False(Ipv6Extensions.TryFindUpperLayer(b, out _));
    }

    [Fact]
    public void Ipv6_view_reads_and_writes_traffic_class_flow_label_and_hop_limit()
    {
        byte[] b = Convert.FromHexString(ScapyCases.Udp6);
        Assert.True(Ipv6Header.TryCreate(b, out Ipv6Header h));
        Assert.Equal((0xb8, 0x12345u, 11, 64), ((int)h.TrafficClass, h.FlowLabel, (int)h.PayloadLengthField, (int)h.HopLimit));
        h.TrafficClass = 0x04;
        h.HopLimit = 1;
        Assert.Equal((0x04, 0x12345u, 6), ((int)h.TrafficClass, h.FlowLabel, b[0] >> 4));
        h.FlowLabel = 0xfffff;
        Assert.Equal((0x04, 0xfffffu), ((int)h.TrafficClass, h.FlowLabel));
        Assert.Equal(11, h.Payload.Length);
    }

    [Theory]
    [InlineData("60000000")] // short
    [InlineData("4500002c00000000400666ca0a0000010a00000204d2005000000001000000006002faf084100000020405b4")] // version 4
    public void Ipv6_view_refuses_a_buffer_without_an_ipv6_header(string hex)
    {
        Assert.False(Ipv6Header.TryCreate(Convert.FromHexString(hex), out _));
    }

    [Fact]
    public void Tcp_option_walker_reads_nop_and_sack_blocks()
    {
        byte[] b = Convert.FromHexString(TcpSack);
        Assert.True(TcpHeader.TryCreate(b.AsSpan(20), out TcpHeader tcp));
        var kinds = new List<byte>();
        foreach (TcpOption o in tcp.EnumerateOptions()) kinds.Add(o.Kind);
        Assert.Equal([TcpOptionKind.Nop, TcpOptionKind.Nop, TcpOptionKind.Sack], kinds);
        Assert.Equal(new TcpOptions(null, null, false, 2, null, null, false), TcpOptions.Parse(tcp.Options));
        Assert.Equal("IP 10.0.0.1.1 > 10.0.0.2.2: Flags [.], ack 1, win 100, options [nop,nop,sack 2 {1000:2000} {3000:4000}], length 0",
            Packet.Parse(b).ToString());
    }

    public static TheoryData<string, string, bool, ushort?> TcpOptionBytes() => new()
    {
        // scenario, option bytes, malformed, MSS found
        { "mss", "020405b4", false, 1460 },
        { "mss then end of list and junk", "020405b400ffffff", false, 1460 },
        { "length 0 stops the walk", "0200020405b4", true, null },
        { "length 1 stops the walk", "0201020405b4", true, null },
        { "length past the end", "020805b4", true, null },
        { "kind without length byte", "010102", true, null },
        { "mss with wrong length is skipped", "020302" + "020405b4" + "000000", false, 1460 },
    };

    [Theory]
    [MemberData(nameof(TcpOptionBytes))]
    public void Tcp_option_walker_stops_at_bad_lengths(string scenario, string hex, bool malformed, ushort? mss)
    {
        TcpOptions o = TcpOptions.Parse(Convert.FromHexString(hex));
        Assert.Equal(malformed, o.Malformed);
        Assert.True(mss == o.Mss, scenario);
    }

    [Theory]
    [InlineData("000100020000000100000001")] // 12 bytes, header needs 20
    [InlineData("00010002000000010000000140100064000000000000")] // data offset 4
    [InlineData("000100020000000100000001f0100064000000000000")] // data offset 15, 22 bytes
    public void Tcp_view_refuses_a_buffer_without_its_header(string hex)
    {
        Assert.False(TcpHeader.TryCreate(Convert.FromHexString(hex), out _));
    }

    [Fact]
    public void Nat_style_rewrite_with_incremental_checksums_matches_a_full_recompute()
    {
        // DNAT 10.0.0.2:80 -> 192.168.1.5:8080 on the scapy SYN, updating checksums the way the kernel does (RFC 1624).
        byte[] b = Convert.FromHexString(ScapyCases.Get("tcp4_syn_mss").Hex);
        Assert.True(Ipv4Header.TryCreate(b, out Ipv4Header ip));
        Assert.True(TcpHeader.TryCreate(b.AsSpan(ip.HeaderLength), out TcpHeader tcp));
        uint oldAddr = ip.DestinationAddress, newAddr = 0xc0a80105;
        ip.DestinationAddress = newAddr;
        ip.Checksum = TransportChecksum.Replace32(ip.Checksum, oldAddr, newAddr);
        tcp.Checksum = TransportChecksum.Replace32(tcp.Checksum, oldAddr, newAddr);
        tcp.Checksum = TransportChecksum.Replace16(tcp.Checksum, tcp.DestinationPort, 8080);
        tcp.DestinationPort = 8080;
        Assert.True(ip.ChecksumValid);
        Assert.True(tcp.ChecksumValid(ip.SourceBytes, ip.DestinationBytes));
        byte[] expected = PacketBuilder.Ipv4("10.0.0.1", "192.168.1.5").Tcp(1234, 8080, TcpFlags.Syn, 1).Mss(1460).Build();
        Assert.Equal(Convert.ToHexStringLower(expected), Convert.ToHexStringLower(b));
    }

    [Fact]
    public void Ipv6_address_rewrite_with_incremental_checksum_matches_a_full_recompute()
    {
        byte[] b = Convert.FromHexString(ScapyCases.Udp6);
        Assert.True(Ipv6Header.TryCreate(b, out Ipv6Header ip));
        Assert.True(UdpHeader.TryCreate(b.AsSpan(40), out UdpHeader udp));
        UInt128 old = ip.SourceAddress, now = old + 0x1234_0000_0000_0000UL;
        ip.SourceAddress = now;
        udp.Checksum = TransportChecksum.Replace128(udp.Checksum, old, now);
        Assert.True(udp.ChecksumValid(ip.SourceBytes, ip.DestinationBytes));
        ushort incremental = udp.Checksum;
        udp.UpdateChecksum(ip.SourceBytes, ip.DestinationBytes);
        Assert.Equal(udp.Checksum, incremental);
    }

    [Fact]
    public void Udp_zero_checksum_means_none_over_ipv4_and_is_invalid_over_ipv6()
    {
        byte[] v4 = Convert.FromHexString(ScapyCases.Udp4);
        v4[26] = v4[27] = 0;
        Assert.True(Packet.Parse(v4).TransportChecksumValid);
        byte[] v6 = Convert.FromHexString(ScapyCases.Udp6);
        v6[46] = v6[47] = 0;
        Assert.False(Packet.Parse(v6).TransportChecksumValid);
    }

    [Fact]
    public void Udp_checksum_that_computes_to_zero_is_sent_as_ffff()
    {
        // Pick a payload word that makes the one's complement sum 0xffff, so the computed checksum is zero.
        byte[] b = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(1, 2).PayloadLength(2).Build();
        Assert.True(UdpHeader.TryCreate(b.AsSpan(20), out UdpHeader udp));
        ushort c = udp.Checksum;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(28), c); // adding the old checksum word makes the sum 0xffff
        udp.UpdateChecksum(b.AsSpan(12, 4), b.AsSpan(16, 4));
        Assert.Equal(0xffff, udp.Checksum);
        Assert.True(udp.ChecksumValid(b.AsSpan(12, 4), b.AsSpan(16, 4)));
    }

    [Fact]
    public void Icmp_view_reads_echo_fields_and_the_quoted_packet_of_an_error()
    {
        byte[] echo = Convert.FromHexString(ScapyCases.Get("icmp4_echo").Hex);
        Assert.True(IcmpHeader.TryCreate(echo.AsSpan(20), out IcmpHeader e));
        Assert.Equal((8, 0, 1, 1, false), (e.Type, e.Code, (int)e.Identifier, (int)e.SequenceNumber, e.IsError));
        Assert.True(e.QuotedPacket.IsEmpty);
        e.Identifier = 4242;
        Assert.False(e.ChecksumValid);
        e.UpdateChecksum();
        Assert.True(e.ChecksumValid);

        byte[] err = Convert.FromHexString(ScapyCases.Get("icmp4_frag_needed").Hex);
        Assert.True(IcmpHeader.TryCreate(err.AsSpan(20), out IcmpHeader f));
        Assert.Equal((3, 4, 1400, true), (f.Type, f.Code, (int)f.NextHopMtu, f.IsError));
        Assert.Equal(ScapyCases.Udp4, Convert.ToHexStringLower(f.QuotedPacket));
        Assert.False(IcmpHeader.TryCreate(new byte[7], out _));
    }

    [Fact]
    public void Icmpv6_view_checksum_covers_the_pseudo_header()
    {
        byte[] b = Convert.FromHexString(ScapyCases.Get("icmp6_port_unreachable").Hex);
        Assert.True(Icmpv6Header.TryCreate(b.AsSpan(40), out Icmpv6Header h));
        Assert.Equal((1, 4, true), (h.Type, h.Code, h.IsError));
        Assert.True(h.ChecksumValid(b.AsSpan(8, 16), b.AsSpan(24, 16)));
        Assert.False(h.ChecksumValid(new byte[16], b.AsSpan(24, 16)));
        Assert.Equal(ScapyCases.Udp6, Convert.ToHexStringLower(h.QuotedPacket));
    }

    [Fact]
    public void Sctp_view_reads_the_common_header_and_chunks_and_checks_crc32c()
    {
        byte[] b = Convert.FromHexString(ScapyCases.Get("sctp4_init").Hex);
        Assert.True(SctpHeader.TryCreate(b.AsSpan(20), out SctpHeader s));
        Assert.Equal((5000, 5001, 0u, (byte?)SctpChunkType.Init), ((int)s.SourcePort, (int)s.DestinationPort, s.VerificationTag, s.FirstChunkType));
        Assert.True(s.ChecksumValid);
        var chunks = new List<SctpChunk>();
        foreach (SctpChunk c in s.EnumerateChunks()) chunks.Add(c);
        Assert.Equal([new SctpChunk(SctpChunkType.Init, 0, 20, 12)], chunks);
        s.DestinationPort = 5002;
        Assert.False(s.ChecksumValid);
        s.UpdateChecksum();
        Assert.True(s.ChecksumValid);
        Assert.False(SctpHeader.TryCreate(new byte[11], out _));
        Assert.True(SctpHeader.TryCreate(new byte[12], out SctpHeader bare));
        Assert.Null(bare.FirstChunkType);
    }

    [Fact]
    public void Sctp_chunk_walker_pads_to_four_bytes_and_flags_a_bad_length()
    {
        // DATA chunk of length 5 (padded to 8), then a COOKIE_ACK, then a chunk claiming 64 bytes.
        byte[] b = Convert.FromHexString("138813890000000000000000" + "0003000541000000" + "0b000004" + "01000040");
        var e = new SctpChunkEnumerator(b);
        var types = new List<(byte, int)>();
        while (e.MoveNext()) types.Add((e.Current.Type, e.Current.Offset));
        Assert.Equal([(SctpChunkType.Data, 12), (SctpChunkType.CookieAck, 20)], types);
        Assert.True(e.Malformed);
    }

    [Fact]
    public void Ethernet_view_without_a_tag_and_with_a_cut_tag()
    {
        byte[] b = Convert.FromHexString("ffffffffffff02000000000186dd");
        Assert.True(EthernetFrame.TryCreate(b, out EthernetFrame f));
        Assert.Equal((false, EtherType.Ipv6, 14, 0xffffffffffffUL), (f.HasVlanTag, f.EtherTypeField, f.PayloadOffset, f.DestinationAddress));
        Assert.False(EthernetFrame.TryCreate(Convert.FromHexString("ffffffffffff0200000000018100"), out _));
        Assert.False(EthernetFrame.TryCreate(new byte[13], out _));
    }
}
