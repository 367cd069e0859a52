using System.Diagnostics;
using System.Text.Json.Nodes;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// Labs 2 (NAT gateway) and 3 (port forwarding) of the guide: the scripts run unmodified through the shims on a
/// gateway host (eth0 public 198.51.100.2/24, eth1 private 10.0.1.1/24), then a whole TCP connection goes through
/// it: SYN, SYN-ACK, ACK, data, FIN/ACK both ways, final ACK — each packet's translation and the connection's
/// state after it (conntrack -L) as the kernel's state machine has them.
/// </summary>
public class GuideNatLabTests
{
    private static (string Output, int Rc) Run(string lab, string packets)
    {
        string guide = Directory.EnumerateFiles(Path.Combine(TestPaths.Shared, "seeds"), "000_*.txt").Order(StringComparer.Ordinal).First();
        string extractor = Path.Combine(TestPaths.RepoRoot, "tests", "tools", "extract-lab.sh");
        string hostDir = Directory.CreateTempSubdirectory("cw-nat-lab-").FullName;
        try
        {
            string script = Path.Combine(hostDir, "lab.sh");
            var (extracted, xc) = ShellShimTests.RunBash("bash \"$1\" \"$2\" \"$3\"", hostDir, extractor, guide, lab);
            xc.ShouldBe(0, extracted);
            File.WriteAllText(script, extracted);
            File.WriteAllText(Path.Combine(hostDir, "packets.jsonl"), packets);
            return ShellShimTests.RunBash("""
eval "$(eval "$CLI" --host "$HOSTDIR" env)"
ip link add eth0 type dummy && ip link set eth0 up && ip addr add 198.51.100.2/24 dev eth0
ip route add default via 198.51.100.1
ip link add eth1 type dummy && ip link set eth1 up && ip addr add 10.0.1.1/24 dev eth1
bash -e "$1" >/dev/null
while read -r line; do
  echo "$line" | eval "$CLI" --host "$HOSTDIR" trace --batch - --json
  conntrack -L 2>/dev/null | sed 's/^/CT /'
done < "$HOSTDIR/packets.jsonl"
""", hostDir, script);
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    private static List<(string Fate, string Out, string Ct)> Steps(string output)
    {
        var steps = new List<(string, string, string)>();
        string[] lines = output.TrimEnd().Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith('{')) continue;
            JsonNode o = JsonNode.Parse(lines[i])!;
            string fate = o["fate"]![0]!.GetValue<string>();
            string outp = o["outputs"]!.AsArray().Count > 0 ? o["outputs"]![0]!["summary"]!.GetValue<string>() : "";
            string ct = i + 1 < lines.Length && lines[i + 1].StartsWith("CT ", StringComparison.Ordinal) ? lines[i + 1][3..] : "";
            steps.Add((fate, outp, ct));
        }
        return steps;
    }

    [Fact]
    public void Lab2_nat_gateway_masquerades_a_whole_tcp_connection()
    {
        const string c = "\"proto\":\"tcp\",\"src\":\"10.0.1.50\",\"dst\":\"93.184.216.34\",\"sport\":40000,\"dport\":80";
        const string s = "\"proto\":\"tcp\",\"src\":\"93.184.216.34\",\"dst\":\"198.51.100.2\",\"sport\":80,\"dport\":40000";
        string packets = string.Join('\n',
            "{\"in\":\"eth1\"," + c + ",\"flags\":\"SYN\",\"seq\":1000}",
            "{\"in\":\"eth0\"," + s + ",\"flags\":\"SYN,ACK\",\"seq\":5000,\"ack\":1001}",
            "{\"in\":\"eth1\"," + c + ",\"flags\":\"ACK\",\"seq\":1001,\"ack\":5001}",
            "{\"in\":\"eth1\"," + c + ",\"flags\":\"PSH,ACK\",\"seq\":1001,\"ack\":5001,\"len\":60}",
            "{\"in\":\"eth0\"," + s + ",\"flags\":\"FIN,ACK\",\"seq\":5001,\"ack\":1021}",
            "{\"in\":\"eth1\"," + c + ",\"flags\":\"FIN,ACK\",\"seq\":1021,\"ack\":5002}",
            "{\"in\":\"eth0\"," + s + ",\"flags\":\"ACK\",\"seq\":5002,\"ack\":1022}") + "\n";
        var (output, rc) = Run("Lab 2: NAT Gateway", packets);
        rc.ShouldBe(0, output);
        var steps = Steps(output);
        steps.Count.ShouldBe(7, output);
        string[] expectOut =
        [
            "IP 198.51.100.2.40000 > 93.184.216.34.80:", "IP 93.184.216.34.80 > 10.0.1.50.40000:", "IP 198.51.100.2.40000 > 93.184.216.34.80:",
            "IP 198.51.100.2.40000 > 93.184.216.34.80:", "IP 93.184.216.34.80 > 10.0.1.50.40000:", "IP 198.51.100.2.40000 > 93.184.216.34.80:",
            "IP 93.184.216.34.80 > 10.0.1.50.40000:",
        ];
        string[] states = ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "ESTABLISHED", "FIN_WAIT", "LAST_ACK", "TIME_WAIT"];
        string[] fates = ["forwarded:eth0", "forwarded:eth1", "forwarded:eth0", "forwarded:eth0", "forwarded:eth1", "forwarded:eth0", "forwarded:eth1"];
        for (int i = 0; i < 7; i++)
        {
            steps[i].Fate.ShouldBe(fates[i], output);
            steps[i].Out.ShouldStartWith(expectOut[i], customMessage: output);
            steps[i].Ct.ShouldContain(" " + states[i] + " src=10.0.1.50 dst=93.184.216.34 sport=40000 dport=80 ", customMessage: output);
            steps[i].Ct.ShouldContain("src=93.184.216.34 dst=198.51.100.2 sport=80 dport=40000", customMessage: output);
        }
    }

    [Fact]
    public void Lab3_port_forwarding_dnats_a_whole_tcp_connection_to_the_private_server()
    {
        const string c = "\"proto\":\"tcp\",\"src\":\"203.0.113.9\",\"dst\":\"198.51.100.2\",\"sport\":51000,\"dport\":443";
        const string s = "\"proto\":\"tcp\",\"src\":\"10.0.1.50\",\"dst\":\"203.0.113.9\",\"sport\":8443,\"dport\":51000";
        string packets = string.Join('\n',
            "{\"in\":\"eth0\"," + c + ",\"flags\":\"SYN\",\"seq\":1000}",
            "{\"in\":\"eth1\"," + s + ",\"flags\":\"SYN,ACK\",\"seq\":5000,\"ack\":1001}",
            "{\"in\":\"eth0\"," + c + ",\"flags\":\"ACK\",\"seq\":1001,\"ack\":5001}",
            "{\"in\":\"eth0\"," + c + ",\"flags\":\"PSH,ACK\",\"seq\":1001,\"ack\":5001,\"len\":60}",
            "{\"in\":\"eth1\"," + s + ",\"flags\":\"FIN,ACK\",\"seq\":5001,\"ack\":1021}",
            "{\"in\":\"eth0\"," + c + ",\"flags\":\"FIN,ACK\",\"seq\":1021,\"ack\":5002}",
            "{\"in\":\"eth1\"," + s + ",\"flags\":\"ACK\",\"seq\":5002,\"ack\":1022}") + "\n";
        var (output, rc) = Run("Lab 3: Port Forwarding", packets);
        rc.ShouldBe(0, output);
        var steps = Steps(output);
        steps.Count.ShouldBe(7, output);
        string[] fates = ["forwarded:eth1", "forwarded:eth0", "forwarded:eth1", "forwarded:eth1", "forwarded:eth0", "forwarded:eth1", "forwarded:eth0"];
        string[] states = ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "ESTABLISHED", "FIN_WAIT", "LAST_ACK", "TIME_WAIT"];
        for (int i = 0; i < 7; i++)
        {
            steps[i].Fate.ShouldBe(fates[i], output);
            steps[i].Out.ShouldStartWith(fates[i] == "forwarded:eth1" ? "IP 203.0.113.9.51000 > 10.0.1.50.8443:" : "IP 198.51.100.2.443 > 203.0.113.9.51000:", customMessage: output);
            steps[i].Ct.ShouldContain(" " + states[i] + " src=203.0.113.9 dst=198.51.100.2 sport=51000 dport=443 ", customMessage: output);
            steps[i].Ct.ShouldContain("src=10.0.1.50 dst=203.0.113.9 sport=8443 dport=51000", customMessage: output);
        }
    }
}
