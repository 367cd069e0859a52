using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The UDP, ICMP and generic conntrack timeouts are read from the per-host-generation sysctl snapshot
/// (ConntrackSysctls) instead of one sysctl lookup per packet: a value changed between two packets of a connection is
/// the one the second packet's refresh uses (nf_conntrack_proto_udp.c udp_packet, _icmp.c, _generic.c read the
/// per-namespace values on every packet).
/// </summary>
public class ConntrackTimeoutSysctlTests
{
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i eth1 -j ACCEPT
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        """;

    private static byte[] Out(string proto) => proto switch
    {
        "udp" => PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Udp(40000, 53).Build(),
        "icmp" => PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").IcmpEcho(7, 1).Build(),
        "gre" => PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Protocol(47).Payload(new byte[8]).Build(),
        _ => PacketBuilder.Ipv4("10.0.1.10", "93.184.216.34").Protocol(99).Payload(new byte[8]).Build(),
    };

    // protocol, key, value before the first packet, value before the second, answered between them, seconds before the
    // second, seconds left after the first and after the second
    public static TheoryData<string, string, string, string, bool, double, long, long> Changes => new()
    {
        { "udp", "net.netfilter.nf_conntrack_udp_timeout", "40", "17", false, 1, 40, 17 },
        { "udp", "net.netfilter.nf_conntrack_udp_timeout", "40", "17", true, 1, 40, 17 },          // replied, not yet a stream
        { "udp", "net.netfilter.nf_conntrack_udp_timeout_stream", "90", "250", true, 3, 30, 250 }, // a stream after 2 s
        { "icmp", "net.netfilter.nf_conntrack_icmp_timeout", "12", "45", false, 1, 12, 45 },
        { "gre", "net.netfilter.nf_conntrack_gre_timeout", "33", "66", false, 1, 33, 66 },
        { "other", "net.netfilter.nf_conntrack_generic_timeout", "500", "7", false, 1, 500, 7 },
    };

    [Theory]
    [MemberData(nameof(Changes))]
    public void A_timeout_changed_between_two_packets_is_used_by_the_second(string proto, string key, string first, string second, bool answered, double gap, long leftFirst, long leftSecond)
    {
        VirtualHost host = EngineHost.Create(Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4);
        var nf = new Netfilter(host);
        ConntrackLoader.Enable(nf).ShouldNotBeNull();
        double now = 1000;
        host.Sysctls[key] = first;
        PacketResult r = nf.Process(EngineHost.In("eth1", Out(proto), now));
        r.Fate.ShouldBe(["forwarded:eth0"]);
        var ct = (ConnEntry)r.Connection!;
        ct.SecondsLeft(now).ShouldBe(leftFirst);
        if (answered)
        {
            ConnTuple t = ct.Reply;
            byte[] reply = PacketBuilder.Ipv4((uint)t.Source, (uint)t.Destination).Udp(t.SourcePort, t.DestinationPort).Build();
            nf.Process(EngineHost.In("eth0", reply, now)).Fate.ShouldBe(["forwarded:eth1"]);
        }
        host.Sysctls[key] = second;
        now += gap;
        // Original direction: NEW until a reply was seen (nf_conntrack_in's ctinfo).
        nf.Process(EngineHost.In("eth1", Out(proto), now)).CtState.ShouldBe(answered ? "ESTABLISHED" : "NEW");
        ct.SecondsLeft(now).ShouldBe(leftSecond);
    }
}
