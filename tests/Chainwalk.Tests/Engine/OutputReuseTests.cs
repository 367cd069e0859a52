using Chainwalk.Engine;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// A result reused packet after packet (a replay) takes its output records again, also after packets that sent nothing
/// and for bytes of another length, and each record then carries the bytes of its own packet.
/// </summary>
public class OutputReuseTests
{
    private const string Accept = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    public static TheoryData<string, int, int> Between => new()
    {
        // what comes between two packets the host sends on eth0, the two sent packets' UDP payload lengths
        { "nothing", 20, 20 },
        { "nothing", 20, 300 },
        { "a packet delivered here", 20, 300 },
        { "two packets delivered here", 300, 20 },
        { "a packet dropped", 64, 65 },
    };

    [Theory]
    [MemberData(nameof(Between))]
    public void A_sent_packet_reuses_an_earlier_record_with_its_own_bytes(string between, int firstLength, int secondLength)
    {
        var reusing = new Netfilter(EngineHost.Create(Accept + "*filter\n-A INPUT -p udp --dport 9 -j DROP\nCOMMIT\n"));
        var fresh = new Netfilter(EngineHost.Create(Accept + "*filter\n-A INPUT -p udp --dport 9 -j DROP\nCOMMIT\n"));
        var reused = new PacketResult();
        byte[] Sent(int length) => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.77").Udp(5000, 53).PayloadLength(length).Build();
        var inputs = new List<PacketInput> { EngineHost.Local(Sent(firstLength)) };
        int copies = between.StartsWith("two", StringComparison.Ordinal) ? 2 : between == "nothing" ? 0 : 1;
        for (int i = 0; i < copies; i++)
            inputs.Add(EngineHost.In("eth1", EngineHost.Udp("192.168.1.50", "192.168.1.1", (ushort)(6000 + i), between.Contains("dropped", StringComparison.Ordinal) ? (ushort)9 : (ushort)53)));
        inputs.Add(EngineHost.Local(Sent(secondLength)));

        OutputPacket? first = null;
        for (int i = 0; i < inputs.Count; i++)
        {
            PacketResult expected = fresh.Process(inputs[i]);
            PacketResult r = reusing.Process(inputs[i], reused);
            r.Fate.ShouldBe(expected.Fate, $"packet {i}");
            r.Outputs.Select(o => (o.Interface, o.Kind, Convert.ToHexString(o.Bytes)))
                .ShouldBe(expected.Outputs.Select(o => (o.Interface, o.Kind, Convert.ToHexString(o.Bytes))), $"packet {i}");
            if (i == 0) first = r.Outputs.ShouldHaveSingleItem();
        }
        reused.Fate.ShouldBe(["sent:eth0"]);
        reused.Outputs.ShouldHaveSingleItem().ShouldBeSameAs(first);
        reused.Outputs[0].Bytes.Length.ShouldBe(20 + 8 + secondLength);
    }
}
