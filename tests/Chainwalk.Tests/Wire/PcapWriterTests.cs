using System.Diagnostics;
using Chainwalk.Wire;
using Xunit;
using static Chainwalk.Tests.Wire.PcapReaderTests;

namespace Chainwalk.Tests.Wire;

/// <summary>A test that needs an external program; it is skipped, saying which Debian package to install, when the program is missing.</summary>
public sealed class PcapToolFactAttribute : FactAttribute
{
    public PcapToolFactAttribute(string tool, string package)
    {
        if (PcapTool.Find(tool) is null) Skip = $"{tool} is not installed (Debian package {package}); the check that it reads Chainwalk's captures did not run";
    }
}

internal static class PcapTool
{
    public static string? Find(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/usr/sbin").Split(':')
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    /// <summary>Runs the tool and returns its standard output; fails the test on a non-zero exit.</summary>
    public static string Run(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(Find(tool)!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in args) psi.ArgumentList.Add(a);
        using Process p = Process.Start(psi)!;
        Task<string> err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{tool} {string.Join(' ', args)} exited {p.ExitCode}: {err.Result}");
        return output;
    }
}

public class PcapWriterTests
{
    // scapy: Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.0.0.1', dst='10.0.0.2', id=1)/TCP(sport=1234, dport=80, flags='S', seq=1)
    private static readonly byte[] EthernetTcp = ReadAll(Load("scapy-le-us.pcap"))[0].Data;
    private static readonly byte[] Ipv6Udp = ReadAll(Load("handmade-be.pcapng"))[1].Data;

    private static readonly CaptureTimestamp T0 = new(1_700_000_000, 123_456_789);

    public static TheoryData<CaptureFileFormat, bool> Formats => new()
    {
        { CaptureFileFormat.Pcap, false }, { CaptureFileFormat.Pcap, true },
        { CaptureFileFormat.PcapNanoseconds, false }, { CaptureFileFormat.PcapNanoseconds, true },
        { CaptureFileFormat.PcapNg, false }, { CaptureFileFormat.PcapNg, true },
    };

    private static byte[] WriteSample(CaptureFileFormat format, bool bigEndian, LinkType linkType, byte[] frame, int snap = CaptureWriter.DefaultSnapLength)
    {
        var ms = new MemoryStream();
        using (var w = new CaptureWriter(ms, format, linkType, snap, bigEndian, leaveOpen: true))
        {
            w.Write(T0, frame);
            w.Write(T0 with { Seconds = T0.Seconds + 1 }, frame, originalLength: frame.Length + 100);
            w.Write(new CaptureTimestamp(T0.Seconds + 2, 999_999_999), frame[..1]);
        }
        return ms.ToArray();
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Written_files_read_back_with_the_same_bytes_lengths_and_timestamps(CaptureFileFormat format, bool bigEndian)
    {
        byte[] file = WriteSample(format, bigEndian, LinkType.Ethernet, EthernetTcp);
        List<Rec> recs = ReadAll(file, out CaptureFormatException? error, out CaptureReader? reader);
        Assert.Null(error);
        Assert.Equal(format, reader!.Format);
        Assert.Equal(bigEndian, reader.IsBigEndian);
        Assert.Equal(3, recs.Count);
        Assert.All(recs, r => Assert.Equal(LinkType.Ethernet, r.LinkType));
        Assert.Equal(EthernetTcp, recs[0].Data);
        Assert.Equal(EthernetTcp, recs[1].Data);
        Assert.Equal(EthernetTcp[..1], recs[2].Data);
        Assert.Equal([EthernetTcp.Length, EthernetTcp.Length + 100, 1], recs.Select(r => r.OriginalLength));
        uint Cut(uint ns) => format == CaptureFileFormat.Pcap ? ns / 1000 * 1000 : ns;
        Assert.Equal(
            [new CaptureTimestamp(T0.Seconds, Cut(T0.Nanoseconds)), new CaptureTimestamp(T0.Seconds + 1, Cut(T0.Nanoseconds)), new CaptureTimestamp(T0.Seconds + 2, Cut(999_999_999))],
            recs.Select(r => r.Timestamp));
    }

    [Fact]
    public void Bytes_past_the_snap_length_are_cut_and_the_original_length_kept()
    {
        Rec r = ReadAll(WriteSample(CaptureFileFormat.Pcap, false, LinkType.Ethernet, EthernetTcp, snap: 20))[0];
        Assert.Equal(EthernetTcp[..20], r.Data);
        Assert.Equal(EthernetTcp.Length, r.OriginalLength);
    }

    [Fact]
    public void Pcapng_with_an_ethernet_and_a_raw_interface_round_trips()
    {
        var ms = new MemoryStream();
        using (var w = new CaptureWriter(ms, CaptureFileFormat.PcapNg, LinkType.Ethernet, leaveOpen: true))
        {
            Assert.Equal(1, w.AddInterface(LinkType.Raw, "tun0"));
            w.Write(T0, Ipv6Udp, interfaceIndex: 1);
            w.Write(T0, EthernetTcp);
            Assert.Throws<ArgumentOutOfRangeException>(() => w.Write(T0, EthernetTcp, interfaceIndex: 2));
        }
        List<Rec> recs = ReadAll(ms.ToArray(), out _, out CaptureReader? reader);
        Assert.Equal([LinkType.Ethernet, LinkType.Raw], reader!.Interfaces.Select(i => i.LinkType));
        Assert.Equal([null, "tun0"], reader.Interfaces.Select(i => i.Name));
        Assert.Equal([(1, LinkType.Raw), (0, LinkType.Ethernet)], recs.Select(r => (r.Interface, r.LinkType)));
        Assert.Equal(Ipv6Udp, recs[0].Data);
        Assert.Equal(T0, recs[1].Timestamp);
    }

    [Fact]
    public void Pcapng_records_keep_their_direction_in_epb_flags()
    {
        var ms = new MemoryStream();
        using (var w = new CaptureWriter(ms, CaptureFileFormat.PcapNg, LinkType.Ethernet, bigEndian: true, leaveOpen: true))
        {
            w.Write(T0, EthernetTcp, direction: CaptureDirection.Outbound);
            w.Write(T0, EthernetTcp[..3], direction: CaptureDirection.Inbound);
            w.Write(T0, EthernetTcp);
        }
        using var reader = new CaptureReader(new MemoryStream(ms.ToArray()));
        var seen = new List<(CaptureDirection, int)>();
        while (reader.TryReadNext(out CaptureRecord r)) seen.Add((r.Direction, r.Data.Length));
        Assert.Equal([(CaptureDirection.Outbound, EthernetTcp.Length), (CaptureDirection.Inbound, 3), (CaptureDirection.Unknown, EthernetTcp.Length)], seen);
    }

    [Fact]
    public void Classic_pcap_refuses_a_second_interface()
    {
        using var w = new CaptureWriter(new MemoryStream(), CaptureFileFormat.Pcap, LinkType.Ethernet);
        Assert.Throws<InvalidOperationException>(() => w.AddInterface(LinkType.Raw));
    }

    [Fact]
    public void Reading_a_capture_and_writing_it_again_gives_the_same_records()
    {
        foreach (string name in new[] { "tcpdump-lo-ns.pcap", "scapy-sll2.pcap" })
        {
            List<Rec> original = ReadAll(Load(name));
            var ms = new MemoryStream();
            using (var w = new CaptureWriter(ms, CaptureFileFormat.PcapNg, original[0].LinkType, leaveOpen: true))
            {
                foreach (Rec r in original) w.Write(r.Timestamp, r.Data, r.OriginalLength);
            }
            List<Rec> again = ReadAll(ms.ToArray());
            Assert.Equal(original.Select(r => (r.Timestamp, r.OriginalLength, Convert.ToHexString(r.Data))), again.Select(r => (r.Timestamp, r.OriginalLength, Convert.ToHexString(r.Data))));
        }
    }

    private static string TempCapture(byte[] bytes, string extension)
    {
        string path = Path.Combine(Path.GetTempPath(), $"chainwalk-pcap-{Guid.NewGuid():N}.{extension}");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static TheoryData<CaptureFileFormat, bool, LinkType> ToolCases => new()
    {
        { CaptureFileFormat.Pcap, false, LinkType.Ethernet },
        { CaptureFileFormat.PcapNanoseconds, true, LinkType.Ethernet },
        { CaptureFileFormat.PcapNg, false, LinkType.Raw },
        { CaptureFileFormat.PcapNg, true, LinkType.Ethernet },
    };

    [PcapToolFact("tshark", "tshark")]
    public void Tshark_reads_every_format_the_writer_writes()
    {
        foreach ((CaptureFileFormat format, bool bigEndian, LinkType linkType) in ToolCases.Select(c => ((CaptureFileFormat)c[0], (bool)c[1], (LinkType)c[2])))
        {
            byte[] frame = linkType == LinkType.Raw ? Ipv6Udp : EthernetTcp;
            string path = TempCapture(WriteSample(format, bigEndian, linkType, frame), format == CaptureFileFormat.PcapNg ? "pcapng" : "pcap");
            try
            {
                string fields = PcapTool.Run("tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.cap_len", "-e", "frame.len", "-e", "ip.src", "-e", "ipv6.src");
                string[] lines = fields.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(3, lines.Length);
                string source = linkType == LinkType.Raw ? "\t\t2001:db8::2" : "\t10.0.0.1\t";
                string fraction = format == CaptureFileFormat.Pcap ? "123456000" : "123456789";
                Assert.Equal($"1700000000.{fraction}\t{frame.Length}\t{frame.Length}{source}", lines[0]);
                Assert.StartsWith($"1700000001.{fraction}\t{frame.Length}\t{frame.Length + 100}", lines[1], StringComparison.Ordinal);
            }
            finally
            {
                File.Delete(path);
            }
        }
    }

    [PcapToolFact("tshark", "tshark")]
    public void Tshark_sees_the_direction_and_the_second_interface_of_a_pcapng()
    {
        var ms = new MemoryStream();
        using (var w = new CaptureWriter(ms, CaptureFileFormat.PcapNg, LinkType.Ethernet, leaveOpen: true))
        {
            int tun = w.AddInterface(LinkType.Raw, "tun0");
            w.Write(T0, EthernetTcp, direction: CaptureDirection.Outbound);
            w.Write(T0, Ipv6Udp, interfaceIndex: tun, direction: CaptureDirection.Inbound);
        }
        string path = TempCapture(ms.ToArray(), "pcapng");
        try
        {
            string fields = PcapTool.Run("tshark", "-r", path, "-T", "fields", "-e", "frame.interface_id", "-e", "frame.interface_name", "-e", "frame.packet_flags_direction", "-e", "ip.src", "-e", "ipv6.src");
            Assert.Equal("0\tunknown\t0x00000002\t10.0.0.1\t\n1\ttun0\t0x00000001\t\t2001:db8::2\n", fields);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [PcapToolFact("tcpdump", "tcpdump")]
    public void Tcpdump_reads_every_format_the_writer_writes()
    {
        foreach ((CaptureFileFormat format, bool bigEndian, LinkType linkType) in ToolCases.Select(c => ((CaptureFileFormat)c[0], (bool)c[1], (LinkType)c[2])))
        {
            byte[] frame = linkType == LinkType.Raw ? Ipv6Udp : EthernetTcp;
            string path = TempCapture(WriteSample(format, bigEndian, linkType, frame), format == CaptureFileFormat.PcapNg ? "pcapng" : "pcap");
            try
            {
                string text = PcapTool.Run("tcpdump", "-r", path, "-n", "-tt", "--nano");
                string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal(3, lines.Length);
                string fraction = format == CaptureFileFormat.Pcap ? "123456000" : "123456789";
                string expected = linkType == LinkType.Raw
                    ? $"1700000000.{fraction} IP6 2001:db8::2.4000 > 2001:db8::1.5000: UDP, length 2"
                    : $"1700000000.{fraction} IP 10.0.0.1.1234 > 10.0.0.2.80: Flags [S], seq 1, win 8192, length 0";
                Assert.Equal(expected, lines[0]);
            }
            finally
            {
                File.Delete(path);
            }
        }
    }
}
