using Chainwalk.Wire;
using Xunit;

namespace Chainwalk.Tests.Wire;

/// <summary>
/// <see cref="Packet.TransportChecksumValid"/> for IPv4 TCP (conntrack's tcp_error check, summed in place) against the
/// general way: the header view (<see cref="TcpHeader.TryCreate"/>) and <see cref="TransportChecksum.Verify"/> over the
/// segment with the pseudo-header, for whole and corrupted segments, with options, with payloads on both sides of the
/// vector sum's threshold and with data offsets that do not fit.
/// </summary>
public class TcpChecksumV4Tests
{
    public static TheoryData<int, int, int> Cases()
    {
        var d = new TheoryData<int, int, int>();
        // payload length, options (4-byte MSS blocks), what is changed after the checksum was written:
        // 0 nothing, 1 a payload or header byte, 2 the checksum field, 3 a data offset below 20 bytes, 4 one past the segment,
        // 5 the IP source address (the pseudo-header; the IP header checksum refreshed)
        foreach (int payload in new[] { 0, 1, 7, 20, 107, 108, 127, 128, 129, 600, 1460 })
            foreach (int options in new[] { 0, 1, 3 })
                for (int change = 0; change <= 5; change++)
                    d.Add(payload, options, change);
        return d;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Ipv4_tcp_checksum_check_is_the_header_views(int payload, int options, int change)
    {
        var builder = PacketBuilder.Ipv4("10.1.2.3", "192.0.2.77").Tcp(40000, 443, TcpFlags.Ack | TcpFlags.Psh, seq: 123456, ack: 654321);
        for (int o = 0; o < options; o++) builder = builder.Mss((ushort)(1400 + o));
        var rnd = new Random(payload * 31 + options);
        byte[] data = new byte[payload];
        rnd.NextBytes(data);
        byte[] b = builder.Payload(data).Build();
        int l4 = 20, header = 20 + 4 * options;
        switch (change)
        {
            case 1: b[payload > 0 ? l4 + header + payload / 2 : l4 + 4] ^= 0x10; break;
            case 2: b[l4 + 16] ^= 0x01; break;
            case 3: b[l4 + 12] = (byte)((b[l4 + 12] & 0x0f) | 0x40); break;
            case 4: b[l4 + 12] = (byte)((b[l4 + 12] & 0x0f) | ((Math.Min(15, (b.Length - l4) / 4 + 1)) << 4)); break;
            case 5:
                b[14] ^= 0x01;
                Assert.True(Ipv4Header.TryCreate(b, out Ipv4Header ip));
                ip.UpdateChecksum();
                break;
        }
        if (!Packet.TryParse(b, out Packet? p, out _)) return; // a data offset the parse refuses: nothing to check
        Span<byte> seg = b.AsSpan(p.TransportOffset, p.TransportLength);
        bool expected = !p.HasTransportHeader
            || (TcpHeader.TryCreate(seg, out _) && TransportChecksum.Verify(seg, b.AsSpan(12, 4), b.AsSpan(16, 4), IpProtocol.Tcp));
        Assert.Equal(expected, p.TransportChecksumValid);
        if (change == 0) Assert.True(p.TransportChecksumValid);
        if (change is 1 or 2 or 5) Assert.False(p.TransportChecksumValid);
    }
}

/// <summary><see cref="Checksum.HeaderValid20"/> (the plain IPv4 read's header check) against <c>Checksum.Compute(header) == 0</c>.</summary>
public class HeaderChecksum20Tests
{
    public static TheoryData<int> Seeds()
    {
        var d = new TheoryData<int>();
        for (int i = 0; i < 40; i++) d.Add(i);
        return d;
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Twenty_byte_header_check_is_the_sum(int seed)
    {
        var rnd = new Random(seed);
        for (int round = 0; round < 200; round++)
        {
            byte[] h = new byte[20 + (round % 3)];
            switch (round % 5)
            {
                case 0: rnd.NextBytes(h); break;                 // random words: almost never valid
                case 1: Array.Fill(h, (byte)0xff); break;        // all ones: valid
                case 2: break;                                   // all zeros: the sum is 0, not all ones
                default:
                    rnd.NextBytes(h);
                    h[10] = h[11] = 0;
                    ushort c = Checksum.Compute(h.AsSpan(0, 20));
                    h[10] = (byte)(c >> 8);
                    h[11] = (byte)c;
                    if (round % 5 == 4) h[rnd.Next(20)] ^= (byte)(1 << rnd.Next(8)); // one bit flipped
                    break;
            }
            Assert.Equal(Checksum.Compute(h.AsSpan(0, 20)) == 0, Checksum.HeaderValid20(h));
        }
    }

    [Fact]
    public void A_built_header_is_valid_and_a_changed_ttl_is_not()
    {
        byte[] b = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, TcpFlags.Ack).Build();
        Assert.True(Checksum.HeaderValid20(b));
        b[8]--;
        Assert.False(Checksum.HeaderValid20(b));
    }
}
