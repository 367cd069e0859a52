using Chainwalk.Wire;
using Xunit;
using static Chainwalk.Tests.Wire.PcapReaderTests;

namespace Chainwalk.Tests.Wire;

/// <summary>LinkLayer on hand-built frames of each link type, and CaptureReader on awkward streams and large records.</summary>
public class PcapLinkLayerTests
{
    // IP(src='10.0.0.1', dst='10.0.0.2', id=0)/UDP(sport=7, dport=9): 28 bytes
    private const string Udp4 = "4500001c00000000401166cd0a0000010a00000200070009000877e4";

    public static TheoryData<LinkType, string, int, ushort, ulong?, ushort?, SllPacketType?, int?> Frames => new()
    {
        // Loopback: the family word in the capturing host's order (2 = AF_INET, little-endian) or OpenBSD's big-endian one.
        { LinkType.Null, "02000000" + Udp4, 4, EtherType.Ipv4, null, null, null, null },
        { LinkType.Loop, "00000002" + Udp4, 4, EtherType.Ipv4, null, null, null, null },
        { LinkType.Raw, Udp4, 0, EtherType.Ipv4, null, null, null, null },
        { LinkType.Ipv4, Udp4, 0, EtherType.Ipv4, null, null, null, null },
        // Ethernet with an 802.1ad outer tag (id 100) and an 802.1Q inner one (id 200): the outer tag is reported.
        { LinkType.Ethernet, "02000000000202000000000188a800648100" + "00c80800" + Udp4, 22, EtherType.Ipv4, 0x020000000001, 0x0064, null, null },
        // SLL v1, outgoing, Ethernet address, with a VLAN tag the kernel handed out of band and libpcap put back.
        { LinkType.LinuxSll, "0004000100060200000000010000" + "8100" + "a00a0800" + Udp4, 20, EtherType.Ipv4, 0x020000000001, 0xa00a, SllPacketType.Outgoing, null },
        // SLL v2 on a tun device (ARPHRD_NONE, no address), broadcast.
        { LinkType.LinuxSll2, "0800" + "0000" + "00000007" + "fffe" + "01" + "00" + "0000000000000000" + Udp4, 20, EtherType.Ipv4, null, null, SllPacketType.Broadcast, 7 },
    };

    [Theory]
    [MemberData(nameof(Frames))]
    public void Each_link_type_leads_to_the_ip_packet(LinkType linkType, string hex, int ipOffset, ushort etherType, ulong? mac, ushort? tag, SllPacketType? packetType, int? ifindex)
    {
        byte[] frame = Convert.FromHexString(hex);
        Assert.True(LinkLayer.TryFindIp(linkType, frame, out int offset, out LinkLayerFacts facts, out LinkLayerError error), error.ToString());
        Assert.Equal(ipOffset, offset);
        Assert.Equal(new LinkLayerFacts(etherType, mac, tag, packetType, ifindex), facts);
        Assert.Equal("IP 10.0.0.1.7 > 10.0.0.2.9: UDP, length 0", Packet.Parse(frame.AsSpan(offset)).ToString());
        var record = new CaptureRecord(default, 0, linkType, frame.Length, frame, 0);
        Assert.True(LinkLayer.TryDecode(record, out Packet? packet, out _, out _));
        Assert.Equal(28, packet.TotalLength);
        for (int cut = 0; cut < ipOffset; cut++)
            Assert.False(LinkLayer.TryFindIp(linkType, frame.AsSpan(0, cut), out _, out _, out _));
    }

    [Fact]
    public void Unknown_link_types_and_non_ip_payloads_say_why()
    {
        Assert.False(LinkLayer.TryFindIp((LinkType)147, [1, 2, 3], out _, out _, out LinkLayerError error));
        Assert.Equal(LinkLayerError.UnsupportedLinkType, error);
        Assert.False(LinkLayer.TryFindIp(LinkType.Raw, [0x10, 0, 0, 0], out _, out _, out error));
        Assert.Equal(LinkLayerError.NotIp, error);
        var record = new CaptureRecord(default, 0, LinkType.Ethernet, 10, new byte[10], 0);
        Assert.False(LinkLayer.TryDecode(record, out _, out _, out string? why));
        Assert.Equal("frame shorter than its link-layer header", why);
    }

    /// <summary>A stream that hands out at most a few bytes per read, as a pipe or socket may.</summary>
    private sealed class TrickleStream(byte[] data) : MemoryStream(data)
    {
        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(count, 3));

        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, 3)]);
    }

    [Theory]
    [InlineData("merged-two-interfaces.pcapng")]
    [InlineData("scapy-be-ns.pcap")]
    public void Short_reads_from_the_stream_give_the_same_records(string name)
    {
        byte[] file = Load(name);
        List<Rec> expected = ReadAll(file);
        using var reader = new CaptureReader(new TrickleStream(file));
        var got = new List<string>();
        while (reader.TryReadNext(out CaptureRecord r)) got.Add(r.Timestamp + " " + Convert.ToHexString(r.Data));
        Assert.Equal(expected.Select(r => r.Timestamp + " " + Convert.ToHexString(r.Data)), got);
    }

    [Theory]
    [InlineData(CaptureFileFormat.Pcap)]
    [InlineData(CaptureFileFormat.PcapNg)]
    public void Records_larger_than_the_read_buffer_are_read_whole(CaptureFileFormat format)
    {
        byte[] big = new byte[200_000];
        new Random(7).NextBytes(big);
        var ms = new MemoryStream();
        using (var w = new CaptureWriter(ms, format, LinkType.Ethernet, snapLength: 1 << 20, leaveOpen: true))
        {
            w.Write(new CaptureTimestamp(1, 0), big[..100]);
            w.Write(new CaptureTimestamp(2, 0), big);
            w.Write(new CaptureTimestamp(3, 0), big[..100]);
        }
        List<Rec> recs = ReadAll(ms.ToArray());
        Assert.Equal([100, 200_000, 100], recs.Select(r => r.Data.Length));
        Assert.Equal(big, recs[1].Data);
    }
}
