using BenchmarkDotNet.Attributes;
using Chainwalk.Wire;

namespace Chainwalk.Bench;

/// <summary>
/// CaptureReader throughput: an in-memory capture of one million 60-byte Ethernet/IPv4/UDP frames, read record by
/// record (and the IP packet found in each). Figures are per packet (OperationsPerInvoke).
/// </summary>
[MemoryDiagnoser]
public class CaptureBenchmarks
{
    private const int Packets = 1_000_000;
    private byte[] _pcap = [];
    private byte[] _pcapng = [];

    [GlobalSetup]
    public void Setup()
    {
        byte[] frame = Convert.FromHexString(
            "020000000002020000000001080045000024000100004011a6c50a0000010a000002" + "00070009001000000102030405060708" + "0000000000000000");
        _pcap = Build(CaptureFileFormat.PcapNanoseconds, frame);
        _pcapng = Build(CaptureFileFormat.PcapNg, frame);
    }

    [Benchmark(OperationsPerInvoke = Packets)]
    public long ReadPcap() => Read(_pcap);

    [Benchmark(OperationsPerInvoke = Packets)]
    public long ReadPcapNg() => Read(_pcapng);

    [Benchmark(OperationsPerInvoke = Packets)]
    public long ReadPcapFindIp()
    {
        using var reader = new CaptureReader(new MemoryStream(_pcap, writable: false));
        long sum = 0;
        while (reader.TryReadNext(out CaptureRecord r))
        {
            if (LinkLayer.TryFindIp(r.LinkType, r.Data, out int offset, out LinkLayerFacts facts, out _)) sum += offset + facts.EtherType;
        }
        return sum;
    }

    private static long Read(byte[] file)
    {
        using var reader = new CaptureReader(new MemoryStream(file, writable: false));
        long sum = 0;
        while (reader.TryReadNext(out CaptureRecord r)) sum += r.Data.Length + r.Timestamp.Nanoseconds;
        return sum;
    }

    private static byte[] Build(CaptureFileFormat format, byte[] frame)
    {
        var ms = new MemoryStream();
        using (var w = new CaptureWriter(ms, format, LinkType.Ethernet, leaveOpen: true))
        {
            for (int i = 0; i < Packets; i++) w.Write(new CaptureTimestamp(1_700_000_000 + (i / 1000), (uint)(i % 1000) * 1000), frame);
        }
        return ms.ToArray();
    }
}
