using Chainwalk.Engine;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// The guide's Labs 2 and 3 (examples/nat-gateway.rules): a LAN host's TCP connection MASQUERADEd out of eth0,
/// and an internet host's connection to the gateway's :443 DNATed to 10.0.1.50:8443. Every packet of the
/// connection (handshake, data, both FINs, last ACK) is checked: the headers that leave and <c>conntrack -L</c>
/// after it. The expectations are the kernel's answers recorded on Linux 6.18 with
/// tests/tools/nat/record-nat.sh (kernel-recording-nat.txt); a test compares the two tables with the recording.
/// </summary>
public class NatGatewayTests
{
    public static string GatewayRules => File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "examples", "nat-gateway.rules"));

    /// <summary>One packet of a connection: who sends it, its flags, sequence numbers and data length, what leaves, the listing after.</summary>
    public sealed record Step(string Name, bool FromClient, TcpFlags Flags, uint Seq, uint Ack, int Data, string Out, string Listing);

    /// <summary>
    /// The client talks to <paramref name="server"/>:<paramref name="sport"/>; the server answers from
    /// <paramref name="real"/>:<paramref name="realPort"/> (after DNAT) to <paramref name="seen"/>:<paramref name="seenPort"/> (after SNAT).
    /// </summary>
    private static void Run(string clientIface, string client, ushort cport, string serverIface, string server, ushort sport, string real, ushort realPort, string seen, ushort seenPort, IEnumerable<Step> steps)
    {
        var rig = new NatRig(GatewayRules);
        foreach (Step s in steps)
        {
            byte[] bytes = s.FromClient
                ? PacketBuilder.Ipv4(client, server).Tcp(cport, sport, s.Flags, s.Seq, s.Ack).PayloadLength(s.Data).Build()
                : PacketBuilder.Ipv4(real, seen).Tcp(realPort, seenPort, s.Flags, s.Seq, s.Ack).PayloadLength(s.Data).Build();
            PacketResult r = rig.In(s.FromClient ? clientIface : serverIface, bytes);
            r.Error.ShouldBeNull(s.Name);
            NatRig.Outputs(r).ShouldBe(s.Out, s.Name);
            rig.Listing.ShouldBe(s.Listing, s.Name);
        }
    }

    private const string Lab2O = "src=10.0.1.20 dst=93.184.216.34 sport=40000 dport=80";
    private const string Lab2R = "src=93.184.216.34 dst=198.51.100.2 sport=80 dport=40000";

    public static IEnumerable<Step> Lab2 =>
    [
        new("SYN", true, TcpFlags.Syn, 1000, 0, 0, "eth0 198.51.100.2:40000 > 93.184.216.34:80 S", $"tcp      6 120 SYN_SENT {Lab2O} [UNREPLIED] {Lab2R} mark=0 use=1"),
        new("SYN-ACK", false, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001, 0, "eth1 93.184.216.34:80 > 10.0.1.20:40000 SA", $"tcp      6 60 SYN_RECV {Lab2O} {Lab2R} mark=0 use=1"),
        new("ACK", true, TcpFlags.Ack, 1001, 5001, 0, "eth0 198.51.100.2:40000 > 93.184.216.34:80 A", $"tcp      6 432000 ESTABLISHED {Lab2O} {Lab2R} [ASSURED] mark=0 use=1"),
        new("data c->s", true, TcpFlags.Psh | TcpFlags.Ack, 1001, 5001, 10, "eth0 198.51.100.2:40000 > 93.184.216.34:80 PA", $"tcp      6 300 ESTABLISHED {Lab2O} {Lab2R} [ASSURED] mark=0 use=1"),
        new("ack s->c", false, TcpFlags.Ack, 5001, 1011, 0, "eth1 93.184.216.34:80 > 10.0.1.20:40000 A", $"tcp      6 432000 ESTABLISHED {Lab2O} {Lab2R} [ASSURED] mark=0 use=1"),
        new("FIN c->s", true, TcpFlags.Fin | TcpFlags.Ack, 1011, 5001, 0, "eth0 198.51.100.2:40000 > 93.184.216.34:80 FA", $"tcp      6 120 FIN_WAIT {Lab2O} {Lab2R} [ASSURED] mark=0 use=1"),
        new("ACK of FIN s->c", false, TcpFlags.Ack, 5001, 1012, 0, "eth1 93.184.216.34:80 > 10.0.1.20:40000 A", $"tcp      6 60 CLOSE_WAIT {Lab2O} {Lab2R} [ASSURED] mark=0 use=1"),
        new("FIN s->c", false, TcpFlags.Fin | TcpFlags.Ack, 5001, 1012, 0, "eth1 93.184.216.34:80 > 10.0.1.20:40000 FA", $"tcp      6 30 LAST_ACK {Lab2O} {Lab2R} [ASSURED] mark=0 use=1"),
        new("last ACK c->s", true, TcpFlags.Ack, 1012, 5002, 0, "eth0 198.51.100.2:40000 > 93.184.216.34:80 A", $"tcp      6 120 TIME_WAIT {Lab2O} {Lab2R} [ASSURED] mark=0 use=1"),
    ];

    private const string Lab3O = "src=203.0.113.9 dst=198.51.100.2 sport=51000 dport=443";
    private const string Lab3R = "src=10.0.1.50 dst=203.0.113.9 sport=8443 dport=51000";

    public static IEnumerable<Step> Lab3 =>
    [
        new("SYN", true, TcpFlags.Syn, 1000, 0, 0, "eth1 203.0.113.9:51000 > 10.0.1.50:8443 S", $"tcp      6 120 SYN_SENT {Lab3O} [UNREPLIED] {Lab3R} mark=0 use=1"),
        new("SYN-ACK", false, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001, 0, "eth0 198.51.100.2:443 > 203.0.113.9:51000 SA", $"tcp      6 60 SYN_RECV {Lab3O} {Lab3R} mark=0 use=1"),
        new("ACK", true, TcpFlags.Ack, 1001, 5001, 0, "eth1 203.0.113.9:51000 > 10.0.1.50:8443 A", $"tcp      6 432000 ESTABLISHED {Lab3O} {Lab3R} [ASSURED] mark=0 use=1"),
        new("data c->s", true, TcpFlags.Psh | TcpFlags.Ack, 1001, 5001, 10, "eth1 203.0.113.9:51000 > 10.0.1.50:8443 PA", $"tcp      6 300 ESTABLISHED {Lab3O} {Lab3R} [ASSURED] mark=0 use=1"),
        new("ack s->c", false, TcpFlags.Ack, 5001, 1011, 0, "eth0 198.51.100.2:443 > 203.0.113.9:51000 A", $"tcp      6 432000 ESTABLISHED {Lab3O} {Lab3R} [ASSURED] mark=0 use=1"),
        new("FIN c->s", true, TcpFlags.Fin | TcpFlags.Ack, 1011, 5001, 0, "eth1 203.0.113.9:51000 > 10.0.1.50:8443 FA", $"tcp      6 120 FIN_WAIT {Lab3O} {Lab3R} [ASSURED] mark=0 use=1"),
        new("ACK of FIN s->c", false, TcpFlags.Ack, 5001, 1012, 0, "eth0 198.51.100.2:443 > 203.0.113.9:51000 A", $"tcp      6 60 CLOSE_WAIT {Lab3O} {Lab3R} [ASSURED] mark=0 use=1"),
        new("FIN s->c", false, TcpFlags.Fin | TcpFlags.Ack, 5001, 1012, 0, "eth0 198.51.100.2:443 > 203.0.113.9:51000 FA", $"tcp      6 30 LAST_ACK {Lab3O} {Lab3R} [ASSURED] mark=0 use=1"),
        new("last ACK c->s", true, TcpFlags.Ack, 1012, 5002, 0, "eth1 203.0.113.9:51000 > 10.0.1.50:8443 A", $"tcp      6 120 TIME_WAIT {Lab3O} {Lab3R} [ASSURED] mark=0 use=1"),
    ];

    /// <summary>
    /// The recording's section <paramref name="section"/>: for each step, the packets that left the gateway and the
    /// listing after it, with the timeouts one second higher (the kernel's clock moved before the listing).
    /// </summary>
    private static List<(string Name, string Out, string Listing)> Recorded(string section)
    {
        string[] lines = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "tests", "Chainwalk.Tests", "Nat", "kernel-recording-nat.txt"));
        var steps = new List<(string Name, List<string> Out, List<string> Listing)>();
        bool inside = false;
        foreach (string line in lines)
        {
            if (line.StartsWith("# ", StringComparison.Ordinal))
            {
                inside = line == "# " + section;
                continue;
            }
            if (!inside) continue;
            if (line.StartsWith("## ", StringComparison.Ordinal)) steps.Add((line[3..], new List<string>(), new List<string>()));
            else if (line.StartsWith("> ", StringComparison.Ordinal)) steps[^1].Out.Add(line[2..]);
            else if (line.Length > 0) steps[^1].Listing.Add(System.Text.RegularExpressions.Regex.Replace(line, @"^(\w+ +\d+) (\d+) ",
                m => m.Groups[1].Value + " " + (long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture) + " "));
        }
        return steps.Select(t => (t.Name, string.Join(" | ", t.Out), string.Join("\n", t.Listing))).ToList();
    }

    [Theory]
    [InlineData("lab2")]
    [InlineData("lab3")]
    public void The_expectations_are_the_kernels_recorded_answers(string section)
    {
        Step[] mine = (section == "lab2" ? Lab2 : Lab3).ToArray();
        List<(string Name, string Out, string Listing)> kernel = Recorded(section);
        kernel.Count.ShouldBe(mine.Length);
        for (int i = 0; i < mine.Length; i++)
        {
            kernel[i].Name.ShouldBe(mine[i].Name);
            kernel[i].Out.ShouldBe(mine[i].Out, mine[i].Name);
            kernel[i].Listing.ShouldBe(mine[i].Listing, mine[i].Name);
        }
    }

    [Fact]
    public void Lab2_masquerade_translates_every_packet_of_a_lan_connection_both_ways() =>
        Run("eth1", "10.0.1.20", 40000, "eth0", "93.184.216.34", 80, "93.184.216.34", 80, "198.51.100.2", 40000, Lab2);

    [Fact]
    public void Lab3_dnat_port_forward_translates_every_packet_both_ways() =>
        Run("eth0", "203.0.113.9", 51000, "eth1", "198.51.100.2", 443, "10.0.1.50", 8443, "203.0.113.9", 51000, Lab3);
}
