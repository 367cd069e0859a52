using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// kube-proxy's rules (examples/demos/kube-proxy-node.rules, with the base-chain jumps kube-proxy installs)
/// on the node of examples/demos/kubernetes.demo: KUBE-SERVICES → KUBE-SVC (statistic random) → KUBE-SEP (DNAT),
/// KUBE-MARK-MASQ → KUBE-POSTROUTING → MASQUERADE; replies un-NATed; a local client's DNAT re-routed; the
/// bindings kept in the connections when the nat table is flushed; <c>--ctstate DNAT</c> and <c>--ctorigdst</c>.
/// </summary>
public class KubeProxyNatTests
{
    private static readonly string[] Node =
    [
        "ip link add eth0 type dummy", "ip link set eth0 up", "ip addr add 192.168.99.11/24 dev eth0", "ip route add default via 192.168.99.1",
        "ip link add cni0 type dummy", "ip link set cni0 up", "ip addr add 10.180.0.254/16 dev cni0", "sysctl -w net.ipv4.ip_forward=1",
    ];

    private const string FilterExtra =
        "-A FORWARD -m conntrack --ctstate DNAT --ctorigdst 172.30.0.41 -m comment --comment dnat-to-svc1\n"
        + "-A FORWARD -m conntrack --ctstate SNAT -m comment --comment snat\n"
        + "-A FORWARD -m conntrack --ctreplsrc 10.180.0.1 --ctrepldst 10.180.0.9 -m comment --comment reply-tuple\n";

    /// <summary>The kube-proxy rules with the base-chain jumps in nat and two counting rules in filter FORWARD.</summary>
    private static string Rules(bool withNat = true)
    {
        // The nfacct objects the demo creates are not on this host: their counting matches are left out (they never decide).
        string text = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "examples", "demos", "kube-proxy-node.rules"))
            .Replace(" -m nfacct --nfacct-name ct_state_invalid_dropped_pkts", "", StringComparison.Ordinal)
            .Replace(" -m nfacct --nfacct-name localhost_nps_accepted_pkts", "", StringComparison.Ordinal);
        // The counting rules go first in FORWARD, before kube-proxy's jumps accept the packets.
        int filter = text.IndexOf("*filter", StringComparison.Ordinal);
        int firstRule = text.IndexOf("\n-A ", filter, StringComparison.Ordinal) + 1;
        text = text[..firstRule] + FilterExtra + text[firstRule..];
        if (!withNat)
        {
            int nat = text.IndexOf("*nat", StringComparison.Ordinal);
            int natCommit = text.IndexOf("COMMIT", nat, StringComparison.Ordinal);
            // What `iptables -t nat -F; iptables -t nat -X` leaves: the table and its empty built-in chains.
            text = text[..nat] + "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT" + text[(natCommit + "COMMIT".Length)..];
        }
        return text;
    }

    private static byte[] Tcp(string src, string dst, ushort sport, ushort dport, TcpFlags flags, uint seq, uint ack) =>
        PacketBuilder.Ipv4(src, dst).Tcp(sport, dport, flags, seq, ack).Build();

    [Fact]
    public void A_pod_calling_a_cluster_ip_is_dnated_to_the_endpoint_and_the_reply_comes_from_the_cluster_ip()
    {
        var rig = new NatRig(Rules(), network: Node);
        PacketResult r = rig.In("cni0", Tcp("10.180.0.9", "172.30.0.41", 41000, 80, TcpFlags.Syn, 1000, 0));
        // Pod to pod by the node: same interface in and out; the redirect the node would send is dropped by NAT (recorded).
        NatRig.Outputs(r).ShouldBe("cni0 10.180.0.9:41000 > 10.180.0.1:80 S");
        NatRig.Changes(r).ShouldBe(["DNAT 172.30.0.41:80 -> 10.180.0.1:80"]);
        NatRig.Notes(r).ShouldContain("DNAT binding chosen by nat KUBE-SEP-SXIVWICOYRO3J4NJ rule 2: 172.30.0.41:80 -> 10.180.0.1:80 (the port is in range)");
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=10.180.0.9 dst=172.30.0.41 sport=41000 dport=80 [UNREPLIED] src=10.180.0.1 dst=10.180.0.9 sport=80 dport=41000 mark=0 use=1");

        PacketResult reply = rig.In("cni0", Tcp("10.180.0.1", "10.180.0.9", 80, 41000, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001));
        NatRig.Outputs(reply).ShouldBe("cni0 172.30.0.41:80 > 10.180.0.9:41000 SA");
        NatRig.Changes(reply).ShouldBe(["un-DNAT (reply source) 10.180.0.1:80 -> 172.30.0.41:80"]);

        // -m conntrack --ctstate DNAT --ctorigdst sees the translated connection; SNAT does not match (no source NAT).
        string counters = EngineHost.Counters(rig.Host);
        counters.ShouldContain("[2:80] -A FORWARD -m conntrack --ctstate DNAT --ctorigdst 172.30.0.41");
        counters.ShouldContain("[0:0] -A FORWARD -m conntrack --ctstate SNAT");
        counters.ShouldContain("[2:80] -A FORWARD -m conntrack --ctreplsrc 10.180.0.1");
    }

    [Fact]
    public void An_outside_client_is_marked_balanced_by_statistic_dnated_and_masqueraded_behind_the_node()
    {
        var rig = new NatRig(Rules(), network: Node);
        var seen = new HashSet<string>();
        for (ushort i = 0; i < 40; i++)
        {
            var sport = (ushort)(52000 + i);
            PacketResult r = rig.In("eth0", Tcp("192.168.99.50", "172.30.0.44", sport, 80, TcpFlags.Syn, 1000, 0));
            Packet o = r.Outputs.Single().Packet;
            string ep = IpNet.FormatAddress(o.Destination, IpFamily.V4);
            ep.ShouldBeOneOf("10.180.0.4", "10.180.0.5");
            seen.Add(ep);
            // KUBE-MARK-MASQ marked it, KUBE-POSTROUTING cleared the mark and masqueraded to cni0's address.
            NatRig.Outputs(r).ShouldBe($"cni0 10.180.0.254:{sport} > {ep}:80 S");
            NatRig.Changes(r).ShouldBe(["mark 0x0→0x4000", $"DNAT 172.30.0.44:80 -> {ep}:80", "mark 0x4000→0x0", $"SNAT 192.168.99.50:{sport} -> 10.180.0.254:{sport}"]);
            rig.Listing.Split('\n')[0].ShouldBe($"tcp      6 120 SYN_SENT src=192.168.99.50 dst=172.30.0.44 sport={sport} dport=80 [UNREPLIED] src={ep} dst=10.180.0.254 sport=80 dport={sport} mark=0 use=1");

            PacketResult reply = rig.In("cni0", Tcp(ep, "10.180.0.254", 80, sport, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001));
            NatRig.Outputs(reply).ShouldBe($"eth0 172.30.0.44:80 > 192.168.99.50:{sport} SA");
        }
        seen.Count.ShouldBe(2);
        EngineHost.Counters(rig.Host).ShouldContain("[40:1600] -A FORWARD -m conntrack --ctstate SNAT");
    }

    [Fact]
    public void A_local_client_is_dnated_in_output_rerouted_to_the_pod_network_and_masqueraded()
    {
        var rig = new NatRig(Rules(), network: Node);
        PacketResult r = rig.Local(Tcp("192.168.99.11", "172.30.0.41", 45000, 80, TcpFlags.Syn, 1000, 0));
        r.Fate.ShouldBe(["sent:cni0"]);
        NatRig.Outputs(r).ShouldBe("cni0 10.180.0.254:45000 > 10.180.0.1:80 S");
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=192.168.99.11 dst=172.30.0.41 sport=45000 dport=80 [UNREPLIED] src=10.180.0.1 dst=10.180.0.254 sport=80 dport=45000 mark=0 use=1");
        PacketResult reply = rig.In("cni0", Tcp("10.180.0.1", "10.180.0.254", 80, 45000, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001));
        reply.Fate.ShouldBe(["delivered-local"]);
        NatRig.Changes(reply).ShouldBe(["un-SNAT (reply destination) 10.180.0.254:45000 -> 192.168.99.11:45000", "un-DNAT (reply source) 10.180.0.1:80 -> 172.30.0.41:80"]);
    }

    [Fact]
    public void Flushing_the_nat_table_leaves_existing_connections_translated()
    {
        var rig = new NatRig(Rules(), network: Node);
        rig.In("cni0", Tcp("10.180.0.9", "172.30.0.41", 41000, 80, TcpFlags.Syn, 1000, 0));
        rig.Host.V4 = EngineHost.Rules(IpFamily.V4, Rules(withNat: false));
        NatRig.Outputs(rig.In("cni0", Tcp("10.180.0.1", "10.180.0.9", 80, 41000, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001)))
            .ShouldBe("cni0 172.30.0.41:80 > 10.180.0.9:41000 SA");
        NatRig.Outputs(rig.In("cni0", Tcp("10.180.0.9", "172.30.0.41", 41000, 80, TcpFlags.Ack, 1001, 5001)))
            .ShouldBe("cni0 10.180.0.9:41000 > 10.180.0.1:80 A");
        // A new connection meets the empty nat table: not translated.
        NatRig.Outputs(rig.In("cni0", Tcp("10.180.0.9", "172.30.0.41", 41001, 80, TcpFlags.Syn, 1000, 0)))
            .ShouldBe("eth0 10.180.0.9:41001 > 172.30.0.41:80 S");
    }
}
