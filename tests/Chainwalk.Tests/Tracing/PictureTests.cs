using System.Xml.Linq;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Pictures;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Tracing;

/// <summary>The pictures are well-formed SVG and show what the trace and the rule set say.</summary>
public class PictureTests
{
    private static readonly XNamespace S = "http://www.w3.org/2000/svg";

    private static string[] Texts(string svg) => XDocument.Parse(svg).Descendants(S + "text").Select(t => t.Value).ToArray();

    [Fact]
    public void The_flow_diagram_draws_the_packets_hooks_verdicts_and_nat()
    {
        var host = EngineHost.Create(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "examples", "nat-gateway.rules")), "",
        [
            "ip link add eth0 type dummy", "ip link set eth0 up", "ip addr add 198.51.100.2/24 dev eth0", "ip route add default via 198.51.100.1",
            "ip link add eth1 type dummy", "ip link set eth1 up", "ip addr add 10.0.1.1/24 dev eth1", "sysctl -w net.ipv4.ip_forward=1",
        ]);
        var nf = new Netfilter(host) { RecordTrace = true };
        Chainwalk.Conntrack.ConntrackLoader.Enable(nf);
        PacketResult r = nf.Process(EngineHost.In("eth0", EngineHost.Tcp("203.0.113.9", "198.51.100.2", 51000, 443)));
        string svg = FlowDiagram.Render(r);
        string[] texts = Texts(svg);
        texts.ShouldContain("nat: PREROUTING rule 1: DNAT");
        texts.ShouldContain("filter: FORWARD rule 3: ACCEPT");
        texts.ShouldContain(t => t.Contains("DNAT 198.51.100.2:443 -> 10.0.1.50:8443", StringComparison.Ordinal));
        texts.ShouldContain("fate: forwarded:eth1");
        texts.ShouldContain("out: eth1");
        XDocument.Parse(FlowDiagram.Html(r).Split("<body>\n")[1].Split("<pre>")[0]).Root!.Name.ShouldBe(S + "svg");
    }

    [Fact]
    public void The_chain_graph_has_every_chain_and_jump()
    {
        string rules = """
            *filter
            :INPUT DROP [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :A - [0:0]
            :B - [0:0]
            :ORPHAN - [0:0]
            [3:180] -A INPUT -j A
            -A A -g B
            -A B -j ACCEPT
            COMMIT
            """;
        Table t = EngineHost.Rules(IpFamily.V4, rules).Find("filter")!;
        string[] texts = Texts(ChainGraph.Svg(t));
        texts.ShouldContain("INPUT");
        texts.ShouldContain("ORPHAN");
        texts.ShouldContain(x => x.Contains("not reachable", StringComparison.Ordinal));
        string dot = ChainGraph.Dot(t);
        dot.ShouldContain("\"INPUT\" -> \"A\" [label=\"1 (3 pkts)\"];");
        dot.ShouldContain("\"A\" -> \"B\" [label=\"1\", style=dashed];");
    }
}
