using System.Globalization;
using System.Text.RegularExpressions;
using Chainwalk.Engine;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// Which source MASQUERADE picks when the out interface has addresses in two subnets: IPv4 takes the address for the
/// next hop of the route the packet carries (rt_nexthop: the gateway, else the destination when on link; the re-route
/// after a DNAT in OUTPUT counts), IPv6 the address ipv6_dev_get_saddr picks for the destination. The expectations are
/// the kernel's answers in kernel-recording-masq-nexthop.txt (tests/tools/nat/record-masq-nexthop.sh, Linux 6.18).
/// </summary>
public partial class MasqueradeNextHopTests
{
    /// <summary>The recording's gateway: eth0 has 198.51.100.2/24 (first) and 203.0.113.2/24; the default gateway is in the second subnet.</summary>
    private static readonly string[] Network =
    [
        "ip link add eth0 type dummy", "ip link add eth1 type dummy", "ip link set eth0 up", "ip link set eth1 up",
        "ip addr add 10.0.1.1/24 dev eth1", "ip addr add 198.51.100.2/24 dev eth0", "ip addr add 203.0.113.2/24 dev eth0",
        "ip addr add fd00:1::1/64 dev eth1 nodad", "ip addr add 2001:db8:100::2/64 dev eth0 nodad", "ip addr add 2001:db8:200::2/64 dev eth0 nodad",
        "ip route add default via 203.0.113.1", "ip route add 192.0.2.0/24 via 198.51.100.1", "ip route add 100.64.0.0/16 dev eth0",
        "ip -6 route add default via 2001:db8:200::1",
        "sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv6.conf.all.forwarding=1",
    ];

    private const string Rules4 = "*nat\n-A OUTPUT -d 10.0.1.99/32 -p udp -m udp --dport 53 -j DNAT --to-destination 93.184.216.34\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n";
    private const string Rules6 = "*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n";

    /// <summary>The recording's steps: its title, whether the gateway itself sends the packet, and the UDP packet.</summary>
    public static TheoryData<string, bool, string, string, int> Cases => new()
    {
        { "default route via 203.0.113.1", false, "10.0.1.20", "93.184.216.34", 5000 },
        { "192.0.2.0/24 via 198.51.100.1", false, "10.0.1.20", "192.0.2.5", 5001 },
        { "on link in 198.51.100.0/24", false, "10.0.1.20", "198.51.100.77", 5002 },
        { "on link in 203.0.113.0/24", false, "10.0.1.20", "203.0.113.77", 5003 },
        { "on link in 100.64.0.0/16, no address of that subnet", false, "10.0.1.20", "100.64.0.9", 5004 },
        { "local to 10.0.1.99 (eth1), DNAT in OUTPUT to 93.184.216.34: re-routed via 203.0.113.1", true, "10.0.1.1", "10.0.1.99", 5005 },
        { "ipv6 to 2001:db8:100:1::1 via 2001:db8:200::1", false, "fd00:1::20", "2001:db8:100:1::1", 5006 },
        { "ipv6 to 2001:db8:300::1 via 2001:db8:200::1", false, "fd00:1::20", "2001:db8:300::1", 5007 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Masquerade_picks_the_source_the_kernel_picked(string step, bool local, string src, string dst, int sport)
    {
        (string output, string listing) = Recorded(step);
        var rig = new NatRig(Rules4, Rules6, Network);
        byte[] udp = EngineHost.Udp(src, dst, (ushort)sport, 53);
        PacketResult r = local ? rig.Local(udp) : rig.In("eth1", udp);
        NatRig.Outputs(r).ShouldBe(output, step);
        UseCount().Replace(rig.Listing, "").ShouldBe(listing, step);
    }

    [Fact]
    public void The_recording_has_every_case_and_no_other()
    {
        string[] titles = File.ReadAllLines(RecordingPath).Where(l => l.StartsWith("## ", StringComparison.Ordinal)).Select(l => l[3..]).ToArray();
        titles.ShouldBe(Cases.Select(c => (string)c[0]).ToArray());
    }

    [Theory]
    [InlineData(false, "93.184.216.34", "203.0.113.1")]
    [InlineData(false, "192.0.2.5", "198.51.100.1")]
    [InlineData(false, "100.64.0.9", "100.64.0.9")]
    [InlineData(true, "93.184.216.34", "203.0.113.1")]
    [InlineData(true, "203.0.113.77", "203.0.113.77")]
    public void The_skb_carries_its_routes_next_hop_into_postrouting(bool local, string dst, string nexthop)
    {
        // No match reads the next hop: the skb is read after processing (a reused result keeps it for the next packet).
        var host = EngineHost.Create("", "", Network);
        var nf = new Netfilter(host);
        byte[] udp = EngineHost.Udp(local ? "198.51.100.2" : "10.0.1.20", dst, 5000, 53);
        PacketResult r = nf.Process(local ? EngineHost.Local(udp) : EngineHost.In("eth1", udp), new PacketResult());
        r.Outputs.Single().Interface.ShouldBe("eth0");
        Skb skb = r.SpareSkb.ShouldNotBeNull();
        Chainwalk.Net.IpNet.FormatAddress(skb.NextHop, Chainwalk.Net.IpFamily.V4).ShouldBe(nexthop);
    }

    private static string RecordingPath => Path.Combine(TestPaths.RepoRoot, "tests", "Chainwalk.Tests", "Nat", "kernel-recording-masq-nexthop.txt");

    [GeneratedRegex(@" use=\d+")]
    private static partial Regex UseCount();

    [GeneratedRegex(@"^(\w+ +\d+) (\d+) ")]
    private static partial Regex Timeout();

    /// <summary>
    /// A step of the recording: what left the gateway (the "badsum" of a locally sent UDP packet is the veth's checksum
    /// offload, not the kernel's answer) and the listing with the timeout one second higher (the kernel's clock moved
    /// before it listed) and without the use count.
    /// </summary>
    private static (string Output, string Listing) Recorded(string step)
    {
        string[] lines = File.ReadAllLines(RecordingPath);
        int at = Array.IndexOf(lines, "## " + step);
        at.ShouldBeGreaterThanOrEqualTo(0, step);
        var output = new List<string>();
        var listing = new List<string>();
        for (int i = at + 1; i < lines.Length && !lines[i].StartsWith('#'); i++)
        {
            if (lines[i].StartsWith("> ", StringComparison.Ordinal)) output.Add(lines[i][2..].Replace(" badsum", "", StringComparison.Ordinal));
            else if (lines[i].Length > 0)
            {
                listing.Add(UseCount().Replace(Timeout().Replace(lines[i], m => m.Groups[1].Value + " "
                    + (long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture) + " "), ""));
            }
        }
        return (string.Join(" | ", output), string.Join("\n", listing));
    }
}
