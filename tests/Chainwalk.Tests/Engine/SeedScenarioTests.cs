using System.Text.Json.Nodes;
using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Tracing;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The rule sets users bring: a Docker host and a kube-proxy node from ../shared/corpus send packets to the chains a
/// reader of those rules expects (published port → DNAT → DOCKER; ClusterIP → KUBE-SVC → KUBE-SEP → DNAT).
/// </summary>
public class SeedScenarioTests
{
    private static readonly string[] DockerHost =
    [
        "ip link add eth0 type dummy", "ip link set eth0 up", "ip addr add 203.0.113.10/24 dev eth0",
        "ip route add default via 203.0.113.1",
        "ip link add bridge1 type dummy", "ip link set bridge1 up", "ip addr add 192.0.2.1/24 dev bridge1",
        "ip link add docker0 type dummy", "ip link set docker0 up", "ip addr add 172.17.0.1/16 dev docker0",
        "sysctl -w net.ipv4.ip_forward=1",
    ];

    private static (Netfilter Nf, PacketResult R) Docker(byte[] packet, string dev)
    {
        string rules = File.ReadAllText(Path.Combine(TestPaths.Shared, "corpus", "docker", "moby-iptablesdoc-usernet-portmap.rules"));
        var host = EngineHost.Create(rules, "", DockerHost);
        var nf = new Netfilter(host) { RecordTrace = true };
        Chainwalk.Conntrack.ConntrackLoader.Enable(nf);
        return (nf, nf.Process(EngineHost.In(dev, packet)));
    }

    private static bool Matched(PacketResult r, string table, string chain, int rule) =>
        r.Trace!.OfType<RuleEvent>().Any(e => e.Table == table && e.Chain == chain && e.Number == rule && e.Matched);

    [Fact]
    public void Docker_published_port_is_dnated_to_the_container_and_accepted_by_the_DOCKER_chain()
    {
        var (_, r) = Docker(EngineHost.Tcp("198.51.100.7", "203.0.113.10", 40000, 8080), "eth0");
        r.Fate.ShouldBe(["forwarded:bridge1"]);
        Matched(r, "nat", "DOCKER", 1).ShouldBeTrue();
        Matched(r, "filter", "DOCKER", 1).ShouldBeTrue();
        Packet p = r.Outputs.ShouldHaveSingleItem().Packet;
        IpNet.FormatAddress(p.Destination, IpFamily.V4).ShouldBe("192.0.2.2");
        p.DestinationPort.ShouldBe((ushort)80);
    }

    [Fact]
    public void Docker_drops_packets_sent_straight_to_a_container_address_from_outside()
    {
        var (_, r) = Docker(EngineHost.Tcp("198.51.100.7", "192.0.2.2", 40000, 22), "eth0");
        r.Fate.ShouldBe(["dropped"]);
        Matched(r, "raw", "PREROUTING", 1).ShouldBeTrue();
    }

    [Fact]
    public void Docker_container_traffic_leaves_masqueraded_as_the_host()
    {
        var (_, r) = Docker(EngineHost.Udp("192.0.2.2", "8.8.8.8", 33000, 53), "bridge1");
        r.Fate.ShouldBe(["forwarded:eth0"]);
        Matched(r, "filter", "DOCKER-FORWARD", 5).ShouldBeTrue();
        Matched(r, "nat", "POSTROUTING", 1).ShouldBeTrue();
        IpNet.FormatAddress(r.Outputs.ShouldHaveSingleItem().Packet.Source, IpFamily.V4).ShouldBe("203.0.113.10");
    }

    private static JsonObject[] KubernetesDemo()
    {
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        DemoCommand.Run(["kubernetes", "--json"], io).ShouldBe(0, io.Err.ToString());
        // The packet objects (the first line is the demo's {"demo":…} header, docs/json.md).
        return io.Out.ToString()!.Trim().Split('\n').Select(l => JsonNode.Parse(l)!.AsObject()).Where(o => !o.ContainsKey("demo")).ToArray();
    }

    private static IEnumerable<string> Chains(JsonObject o) =>
        o["trace"]!.AsArray().Where(t => t!["matched"]!.GetValue<bool>()).Select(t => t!["table"]!.GetValue<string>() + ":" + t!["chain"]!.GetValue<string>());

    [Fact]
    public void Kube_proxy_sends_a_cluster_ip_packet_through_its_service_chain_to_an_endpoint()
    {
        JsonObject o = KubernetesDemo()[0];
        Chains(o).ShouldContain("nat:KUBE-SERVICES");
        Chains(o).ShouldContain("nat:KUBE-SVC-4SW47YFZTEDKD3PK");
        Chains(o).ShouldContain(c => c == "nat:KUBE-SEP-UKSFD7AGPMPPLUHC" || c == "nat:KUBE-SEP-C6EBXVWJJZMIWKLZ");
        o["fate"]![0]!.GetValue<string>().ShouldBe("forwarded:cni0");
        string summary = o["outputs"]![0]!["summary"]!.GetValue<string>();
        summary.ShouldMatch(@"> 10\.180\.0\.[45]\.80:");
    }

    [Fact]
    public void Kube_proxy_rejects_a_service_without_endpoints()
    {
        JsonObject o = KubernetesDemo()[1];
        o["fate"]![0]!.GetValue<string>().ShouldBe("rejected:icmp-port-unreachable");
        Chains(o).ShouldContain("filter:KUBE-SERVICES");
    }

    [Fact]
    public void Kube_proxy_nodeport_reaches_its_endpoint()
    {
        JsonObject o = KubernetesDemo()[2];
        Chains(o).ShouldContain("nat:KUBE-NODEPORTS");
        Chains(o).ShouldContain("nat:KUBE-EXT-X27LE4BHSL4DOUIK");
        Chains(o).ShouldContain("nat:KUBE-SVC-X27LE4BHSL4DOUIK");
        o["outputs"]![0]!["summary"]!.GetValue<string>().ShouldContain("> 10.180.0.3.80:");
        o["ct"]!["nat"]!["dnat"]!.GetValue<string>().ShouldBe("192.168.99.11:3003 -> 10.180.0.3:80");
        o["ct"]!["nat"]!["snat"]!.GetValue<string>().ShouldBe("192.168.99.50:52000 -> 10.180.0.254:52000");
        o["ct"]!["status"]!.AsArray().Select(x => x!.GetValue<string>()).ShouldContain("DST_NAT");
    }
}
