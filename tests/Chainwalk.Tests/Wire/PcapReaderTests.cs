using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Xunit;

namespace Chainwalk.Tests.Wire;

/// <summary>
/// CaptureReader on captures written by scapy, tcpdump, mergecap/editcap and by hand (captures/make-captures.*),
/// with the values tshark 4.x printed for them; and on those files cut short or corrupted.
/// </summary>
public class PcapReaderTests
{
    internal static string Captures => Path.Combine(TestPaths.RepoRoot, "tests", "Chainwalk.Tests", "Wire", "captures");

    internal static byte[] Load(string name) => File.ReadAllBytes(Path.Combine(Captures, name));

    /// <summary>A record copied out of the reader's buffer.</summary>
    internal sealed record Rec(CaptureTimestamp Timestamp, int Interface, int Section, LinkType LinkType, int OriginalLength, byte[] Data, long Offset);

    internal static List<Rec> ReadAll(byte[] file, out CaptureFormatException? error, out CaptureReader? reader)
    {
        var list = new List<Rec>();
        error = null;
        reader = null;
        try
        {
            reader = new CaptureReader(new MemoryStream(file));
            while (reader.TryReadNext(out CaptureRecord r))
                list.Add(new Rec(r.Timestamp, r.InterfaceIndex, r.Section, r.LinkType, r.OriginalLength, r.Data.ToArray(), r.Offset));
        }
        catch (CaptureFormatException e)
        {
            error = e;
        }
        return list;
    }

    internal static List<Rec> ReadAll(byte[] file)
    {
        List<Rec> list = ReadAll(file, out CaptureFormatException? error, out _);
        Assert.Null(error);
        return list;
    }

    public static TheoryData<string, CaptureFileFormat, bool> ScapyFiles => new()
    {
        { "scapy-le-us.pcap", CaptureFileFormat.Pcap, false },
        { "scapy-le-ns.pcap", CaptureFileFormat.PcapNanoseconds, false },
        { "scapy-be-us.pcap", CaptureFileFormat.Pcap, true },
        { "scapy-be-ns.pcap", CaptureFileFormat.PcapNanoseconds, true },
    };

    [Theory]
    [MemberData(nameof(ScapyFiles))]
    public void Scapy_pcap_in_either_byte_order_and_resolution_gives_the_same_four_frames(string file, CaptureFileFormat format, bool bigEndian)
    {
        List<Rec> recs = ReadAll(Load(file), out CaptureFormatException? error, out CaptureReader? reader);
        Assert.Null(error);
        Assert.Equal(format, reader!.Format);
        Assert.Equal(bigEndian, reader.IsBigEndian);
        Assert.Equal([54, 64, 46, 42], recs.Select(r => r.Data.Length));
        Assert.All(recs, r => Assert.Equal(r.Data.Length, r.OriginalLength));
        Assert.All(recs, r => Assert.Equal(LinkType.Ethernet, r.LinkType));
        // scapy rounds 1700000000.123456789 to .123457 for a microsecond file (tshark shows the same).
        uint fraction = format == CaptureFileFormat.Pcap ? 123_457_000u : 123_456_789u;
        Assert.Equal(Enumerable.Range(0, 4).Select(i => new CaptureTimestamp(1_700_000_000 + i, fraction)), recs.Select(r => r.Timestamp));
        Assert.Equal([24L, 94, 174, 236], recs.Select(r => r.Offset));
        Assert.Equal(ReadAll(Load("scapy-le-us.pcap")).Select(r => Convert.ToHexString(r.Data)), recs.Select(r => Convert.ToHexString(r.Data)));
    }

    [Fact]
    public void Ethernet_frames_give_source_mac_vlan_tag_and_the_ip_packet_and_arp_is_not_ip()
    {
        List<Rec> recs = ReadAll(Load("scapy-le-ns.pcap"));
        Assert.True(LinkLayer.TryFindIp(LinkType.Ethernet, recs[0].Data, out int offset, out LinkLayerFacts facts, out _));
        Assert.Equal(14, offset);
        Assert.Equal(new LinkLayerFacts(EtherType.Ipv4, 0x020000000001, null, null, null), facts);

        Assert.True(LinkLayer.TryFindIp(LinkType.Ethernet, recs[2].Data, out offset, out facts, out _));
        Assert.Equal(18, offset);
        Assert.Equal(42, facts.VlanId);
        Assert.Equal(5, facts.VlanPriority);

        Assert.False(LinkLayer.TryFindIp(LinkType.Ethernet, recs[3].Data, out _, out facts, out LinkLayerError why));
        Assert.Equal(LinkLayerError.NotIp, why);
        Assert.Equal(EtherType.Arp, facts.EtherType);

        var record = new CaptureRecord(recs[2].Timestamp, 0, LinkType.Ethernet, recs[2].OriginalLength, recs[2].Data, recs[2].Offset);
        Assert.True(LinkLayer.TryDecode(record, out Packet? packet, out _, out _));
        Assert.Equal("IP 10.0.0.1 > 10.0.0.3: ICMP echo request, id 7, seq 1, length 8", packet.ToString());
        Assert.Equal(42, packet.VlanId);
        Assert.Equal(0x020000000001UL, packet.SourceMac);
    }

    [Fact]
    public void Scapy_sll2_gives_interface_index_packet_type_and_cooked_source_address()
    {
        Rec r = Assert.Single(ReadAll(Load("scapy-sll2.pcap")));
        Assert.Equal(LinkType.LinuxSll2, r.LinkType);
        Assert.Equal(new CaptureTimestamp(1_700_000_001, 500_000_000), r.Timestamp);
        Assert.True(LinkLayer.TryFindIp(r.LinkType, r.Data, out int offset, out LinkLayerFacts facts, out _));
        Assert.Equal(20, offset);
        Assert.Equal(new LinkLayerFacts(EtherType.Ipv4, 0x020000000001, null, SllPacketType.Outgoing, 3), facts);
        var record = new CaptureRecord(r.Timestamp, 0, r.LinkType, r.OriginalLength, r.Data, r.Offset);
        Assert.True(LinkLayer.TryDecode(record, out Packet? packet, out _, out _));
        Assert.Equal("IP 10.0.0.1.7 > 10.0.0.2.9: UDP, length 0", packet.ToString());
    }

    // tshark -T fields -e frame.interface_id -e frame.time_epoch -e frame.cap_len -e sll.pkttype -e sll.ifindex
    private static readonly CaptureTimestamp[] TcpdumpTimes =
        [new(1795246755, 357131754), new(1795246755, 357145073), new(1795246755, 558085824), new(1795246755, 558100025)];

    [Theory]
    [InlineData("tcpdump-lo-ns.pcap", LinkType.Ethernet, 98, 14, true)]
    [InlineData("tcpdump-any-sll.pcap", LinkType.LinuxSll, 100, 16, false)]
    [InlineData("tcpdump-any-sll2.pcap", LinkType.LinuxSll2, 104, 20, false)]
    [InlineData("tcpdump-any-sll2.pcapng", LinkType.LinuxSll2, 104, 20, false)]
    public void Tcpdump_loopback_pings_read_as_tshark_shows_them(string file, LinkType linkType, int length, int ipOffset, bool nanoseconds)
    {
        List<Rec> recs = ReadAll(Load(file));
        Assert.Equal(4, recs.Count);
        for (int i = 0; i < 4; i++)
        {
            Rec r = recs[i];
            Assert.Equal(linkType, r.LinkType);
            Assert.Equal(length, r.Data.Length);
            Assert.Equal(length, r.OriginalLength);
            CaptureTimestamp t = TcpdumpTimes[i];
            Assert.Equal(nanoseconds ? t : t with { Nanoseconds = t.Nanoseconds / 1000 * 1000 }, r.Timestamp);
            Assert.True(LinkLayer.TryFindIp(r.LinkType, r.Data, out int offset, out LinkLayerFacts facts, out _));
            Assert.Equal(ipOffset, offset);
            if (linkType != LinkType.Ethernet) Assert.Equal(SllPacketType.Host, facts.PacketType);
            Assert.Equal(linkType == LinkType.LinuxSll2 ? 1 : null, facts.InterfaceIndex);
            Packet p = Packet.Parse(r.Data.AsSpan(offset));
            Assert.Equal((byte)1, p.Protocol);
        }
    }

    [Fact]
    public void Mergecap_pcapng_with_two_interfaces_keeps_each_interface_resolution()
    {
        List<Rec> recs = ReadAll(Load("merged-two-interfaces.pcapng"), out CaptureFormatException? error, out CaptureReader? reader);
        Assert.Null(error);
        Assert.Equal(CaptureFileFormat.PcapNg, reader!.Format);
        Assert.Equal([LinkType.Ethernet, LinkType.LinuxSll], reader.Interfaces.Select(i => i.LinkType));
        Assert.Equal([9, 6], reader.Interfaces.Select(i => i.TimestampResolution));
        Assert.Equal([1, 0, 1, 0, 1, 0, 1, 0], recs.Select(r => r.Interface));
        Assert.Equal(TcpdumpTimes.SelectMany(t => new[] { t with { Nanoseconds = t.Nanoseconds / 1000 * 1000 }, t }), recs.Select(r => r.Timestamp));
        Assert.Equal([100, 98, 100, 98, 100, 98, 100, 98], recs.Select(r => r.Data.Length));
    }

    [Fact]
    public void Handmade_big_endian_pcapng_two_sections_odd_resolutions_unknown_simple_and_obsolete_blocks()
    {
        List<Rec> recs = ReadAll(Load("handmade-be.pcapng"), out CaptureFormatException? error, out CaptureReader? reader);
        Assert.Null(error);
        Assert.True(reader!.IsBigEndian);
        Assert.Equal(4, recs.Count);
        Assert.Equal((0, 0, LinkType.Ethernet, new CaptureTimestamp(1_700_000_000, 123_000_000)), (recs[0].Section, recs[0].Interface, recs[0].LinkType, recs[0].Timestamp));
        // Interface 1 counts in 2^-10 s: 1700000002 s and 512 units.
        Assert.Equal((0, 1, LinkType.Raw, new CaptureTimestamp(1_700_000_002, 500_000_000)), (recs[1].Section, recs[1].Interface, recs[1].LinkType, recs[1].Timestamp));
        Assert.True(LinkLayer.TryFindIp(LinkType.Raw, recs[1].Data, out int offset, out LinkLayerFacts facts, out _));
        Assert.Equal((0, EtherType.Ipv6), (offset, facts.EtherType));
        // The second section starts afresh: its interface 0 has the default microsecond resolution.
        Assert.Equal((1, 0, default(CaptureTimestamp)), (recs[2].Section, recs[2].Interface, recs[2].Timestamp));
        Assert.Equal((1, 0, new CaptureTimestamp(1_700_000_003, 0)), (recs[3].Section, recs[3].Interface, recs[3].Timestamp));
        Assert.Equal(recs[0].Data, recs[2].Data);
        Assert.Equal(recs[0].Data, recs[3].Data);
        Assert.Single(reader.Interfaces);
    }

    [Theory]
    [InlineData(3UL, 0x83, 0L, 375_000_000u)] // 2^-3 s units
    [InlineData(1_700_000_000_123_456_789UL, 0x09, 1_700_000_000L, 123_456_789u)]
    [InlineData(1_500_000_000_123UL, 0x0c, 1L, 500_000_000u)] // 10^-12 s: picoseconds cut to nanoseconds
    [InlineData(1UL, 0x00, 1L, 0u)] // whole seconds
    [InlineData(ulong.MaxValue, 0xbf, 1L, 999_999_999u)] // 2^-63 s: the fraction needs 128-bit arithmetic
    public void Timestamp_resolutions_convert_to_seconds_and_nanoseconds(ulong units, byte tsresol, long seconds, uint nanos)
    {
        var iface = new CaptureInterface(LinkType.Raw, 0, null, tsresol & 0x7f, (tsresol & 0x80) != 0, 0);
        Assert.Equal(new CaptureTimestamp(seconds, nanos), CaptureReader.ToTimestamp(units, iface));
    }

    public static TheoryData<string> AllFiles => new()
    {
        "scapy-le-us.pcap", "scapy-be-ns.pcap", "tcpdump-any-sll2.pcapng", "merged-two-interfaces.pcapng", "handmade-be.pcapng",
    };

    [Theory]
    [MemberData(nameof(AllFiles))]
    public void A_file_cut_anywhere_delivers_every_whole_record_before_the_cut_then_names_the_offset(string file)
    {
        byte[] full = Load(file);
        List<Rec> all = ReadAll(full);
        for (int cut = 0; cut < full.Length; cut++)
        {
            List<Rec> got = ReadAll(full[..cut], out CaptureFormatException? error, out _);
            Assert.True(got.Count <= all.Count);
            for (int i = 0; i < got.Count; i++)
            {
                Assert.Equal(all[i].Offset, got[i].Offset);
                Assert.Equal(all[i].Data, got[i].Data);
            }
            if (error is null)
            {
                // A cut at a record or block boundary is a shorter, valid file.
                Assert.Equal(all.Count(r => r.Offset < cut), got.Count);
                continue;
            }
            Assert.InRange(error.Offset, 0, cut);
            Assert.Contains("at byte offset " + error.Offset, error.Message, StringComparison.Ordinal);
            Assert.Equal(all.Count(r => r.Offset < error.Offset), got.Count);
        }
    }

    [Fact]
    public void Not_a_capture_file_names_the_magic_and_offset_zero()
    {
        var e = Assert.Throws<CaptureFormatException>(() => new CaptureReader(new MemoryStream("hello world, not pcap"u8.ToArray())));
        Assert.Equal("not a pcap or pcapng file (magic 0x6c6c6568) at byte offset 0", e.Message);
        Assert.Equal(0, e.Offset);
        e = Assert.Throws<CaptureFormatException>(() => new CaptureReader(new MemoryStream([])));
        Assert.Equal("empty file: no capture header at byte offset 0", e.Message);
    }

    [Fact]
    public void A_corrupt_pcap_record_length_comes_after_the_records_before_it_and_the_error_sticks()
    {
        byte[] file = Load("scapy-le-us.pcap");
        file[174 + 8] = 0xff; // captured length of the third record (at byte 174): 0xff + ... > 64 MiB
        file[174 + 11] = 0x7f;
        using var reader = new CaptureReader(new MemoryStream(file));
        Assert.True(reader.TryReadNext(out _));
        Assert.True(reader.TryReadNext(out CaptureRecord second));
        Assert.Equal(94, second.Offset);
        var e = Assert.Throws<CaptureFormatException>(() => reader.TryReadNext(out _));
        Assert.Equal(174, e.Offset);
        Assert.Equal("record claims 2130706687 captured bytes (more than 67108864): corrupt record header at byte offset 174", e.Message);
        Assert.Same(e, Assert.Throws<CaptureFormatException>(() => reader.TryReadNext(out _)));
    }

    [Theory]
    [InlineData(7, 0x1e, 0, 0, "block of type 0x0a0d0d0a has a bad total length 30 at byte offset 0")] // not a multiple of 4
    [InlineData(-1, 0x04, 3, 476, "has total length 88 at its start but 92 at its end at byte offset 476")] // last block's trailer
    public void Pcapng_block_length_errors_name_the_block_offset(int at, byte flip, int before, long offset, string expected)
    {
        byte[] file = Load("handmade-be.pcapng");
        if (at < 0) file[^1] ^= flip;
        else file[at] = flip;
        List<Rec> got = ReadAll(file, out CaptureFormatException? error, out _);
        Assert.Equal(before, got.Count);
        Assert.Equal(offset, error!.Offset);
        Assert.EndsWith(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Packet_block_for_an_undeclared_interface_is_an_error_at_its_offset()
    {
        var ms = new MemoryStream();
        using (var w = new CaptureWriter(ms, CaptureFileFormat.PcapNg, LinkType.Raw, leaveOpen: true))
        {
            w.Write(new CaptureTimestamp(1, 0), [0x45, 0, 0, 20]);
            w.Write(new CaptureTimestamp(2, 0), [0x45, 0, 0, 20]);
        }
        byte[] file = ms.ToArray();
        List<Rec> ok = ReadAll(file);
        long second = ok[1].Offset;
        file[second + 8] = 5; // interface id 5
        List<Rec> got = ReadAll(file, out CaptureFormatException? error, out _);
        Assert.Single(got);
        Assert.Equal(second, error!.Offset);
        Assert.StartsWith("packet block names interface 5, but the section has 1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Random_corruption_only_ever_raises_CaptureFormatException()
    {
        var rng = new Random(20261121);
        string[] files = ["scapy-be-ns.pcap", "merged-two-interfaces.pcapng", "handmade-be.pcapng", "tcpdump-any-sll.pcap"];
        foreach (string name in files)
        {
            byte[] original = Load(name);
            for (int round = 0; round < 300; round++)
            {
                byte[] file = (byte[])original.Clone();
                for (int k = rng.Next(1, 4); k > 0; k--) file[rng.Next(file.Length)] = (byte)rng.Next(256);
                List<Rec> recs = ReadAll(file, out _, out _);
                foreach (Rec r in recs)
                    LinkLayer.TryFindIp(r.LinkType, r.Data, out _, out _, out _);
            }
        }
    }
}
