using Chainwalk.Engine;
using Chainwalk.Net;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.MetaRig;

namespace Chainwalk.Tests.Engine;

/// <summary>The host-metadata matches evaluated on packets, with the kernel's xt_*.c semantics.</summary>
public class MetadataMatchTests
{
    [Theory]
    [InlineData("-m mark --mark 0x1", 1u, true)]
    [InlineData("-m mark --mark 0x1", 2u, false)]
    [InlineData("-m mark --mark 0x10/0xf0", 0x1fu, true)]
    [InlineData("-m mark --mark 0x10/0xf0", 0x2fu, false)]
    [InlineData("-m mark ! --mark 0x1", 2u, true)]
    public void Mark_compares_under_the_mask(string rule, uint mark, bool matched)
    {
        Netfilter nf = With("OUTPUT", rule);
        Matched(nf.Process(Out(Tcp4("10.0.0.1", "10.0.0.9"), mark: mark))).ShouldBe(matched);
    }

    [Theory]
    [InlineData("-m pkttype --pkt-type unicast", Eth0Mac, true)]
    [InlineData("-m pkttype --pkt-type broadcast", 0xffff_ffff_ffffUL, true)]
    [InlineData("-m pkttype --pkt-type multicast", 0x0100_5e00_0001UL, true)]
    [InlineData("-m pkttype ! --pkt-type unicast", 0xffff_ffff_ffffUL, true)]
    [InlineData("-m pkttype --pkt-type unicast", 0xffff_ffff_ffffUL, false)]
    public void Pkttype_reads_the_link_destination(string rule, ulong dstMac, bool matched)
    {
        Netfilter nf = With("PREROUTING", rule, host: null);
        Matched(nf.Process(In(Tcp4(), dstMac: dstMac))).ShouldBe(matched);
    }

    [Theory]
    [InlineData("10.0.0.9", "unicast", true)]
    [InlineData("10.0.0.255", "unicast", true)]
    [InlineData("10.0.0.255", "broadcast", false)]
    public void Pkttype_of_a_locally_sent_packet_is_unicast(string dst, string type, bool matched)
    {
        // Local output carries PACKET_HOST (0): "unicast" in OUTPUT, even to a broadcast address. Kernel check
        // (6.18, namespace): a unicast and a broadcast ping both counted on "--pkt-type unicast" in OUTPUT.
        Matched(With("OUTPUT", "-m pkttype --pkt-type " + type).Process(Out(Tcp4("10.0.0.1", dst)))).ShouldBe(matched);
    }

    [Theory]
    [InlineData("-m mac --mac-source 02:00:00:00:00:09", PeerMac, true)]
    [InlineData("-m mac --mac-source 02:00:00:00:00:08", PeerMac, false)]
    [InlineData("-m mac ! --mac-source 02:00:00:00:00:08", PeerMac, true)]
    public void Mac_source_of_an_ethernet_frame(string rule, ulong srcMac, bool matched)
    {
        Matched(With("INPUT", rule).Process(In(Tcp4(), srcMac: srcMac))).ShouldBe(matched);
    }

    [Fact]
    public void Mac_never_matches_without_an_ethernet_header_even_inverted()
    {
        // xt_mac.c returns false before looking at the invert flag when there is no MAC header.
        Matched(With("INPUT", "-m mac ! --mac-source 02:00:00:00:00:08").Process(In(Tcp4(), srcMac: null))).ShouldBeFalse();
    }

    [Theory]
    [InlineData("-m physdev --physdev-in eth0", false)]
    [InlineData("-m physdev ! --physdev-in eth0", true)]
    [InlineData("-m physdev --physdev-is-bridged", false)]
    [InlineData("-m physdev ! --physdev-is-bridged", true)]
    [InlineData("-m physdev ! --physdev-is-in ! --physdev-is-out", true)]
    [InlineData("-m physdev ! --physdev-is-in --physdev-is-out", false)]
    public void Physdev_without_bridge_info_matches_only_fully_inverted_rules(string rule, bool matched)
    {
        // Kernel check (6.18, namespace, no bridge): "! --physdev-is-in ! --physdev-is-bridged" and "! --physdev-in eth9"
        // counted the packet, "--physdev-in eth9" and "! --physdev-is-in --physdev-is-bridged" did not.
        Matched(With("INPUT", rule).Process(In(Tcp4()))).ShouldBe(matched);
    }

    public static TheoryData<string, SocketOwner?, bool> OwnerCases => new()
    {
        { "-m owner --uid-owner 1000", new SocketOwner(1000, 1000), true },
        { "-m owner --uid-owner 1000-1010", new SocketOwner(1005, 0), true },
        { "-m owner --uid-owner 1000", new SocketOwner(0, 0), false },
        { "-m owner ! --uid-owner 1000", new SocketOwner(0, 0), true },
        { "-m owner --gid-owner 50", new SocketOwner(1000, 1000) { Groups = [50] }, false },
        { "-m owner --gid-owner 50 --suppl-groups", new SocketOwner(1000, 1000) { Groups = [50] }, true },
        { "-m owner --socket-exists", new SocketOwner(1000, 1000), true },
        { "-m owner ! --socket-exists", new SocketOwner(1000, 1000), false },
    };

    [Theory]
    [MemberData(nameof(OwnerCases))]
    public void Owner_reads_the_socket_of_a_local_packet(string rule, SocketOwner? owner, bool matched)
    {
        Matched(With("OUTPUT", rule).Process(Out(Tcp4("10.0.0.1", "10.0.0.9"), owner))).ShouldBe(matched);
    }

    [Theory]
    [InlineData("-m owner --uid-owner 0", false)]
    [InlineData("-m owner ! --uid-owner 0", true)]
    [InlineData("-m owner ! --socket-exists", true)]
    [InlineData("-m owner ! --uid-owner 0 --gid-owner 0", false)]
    public void Owner_of_a_forwarded_packet_matches_only_fully_inverted_rules(string rule, bool matched)
    {
        Matched(With("POSTROUTING", rule, host: null, family: IpFamily.V4).Process(In(Tcp4("10.0.0.9", "192.168.1.20")))).ShouldBe(matched);
    }

    [Theory]
    [InlineData("-m devgroup --src-group 0", true)]
    [InlineData("-m devgroup --src-group 1", false)]
    [InlineData("-m devgroup ! --src-group 1", true)]
    [InlineData("-m devgroup --src-group 0x10/0xf0", false)]
    [InlineData("-m cpu --cpu 0", true)]
    [InlineData("-m cpu --cpu 1", false)]
    [InlineData("-m realm --realm 0", true)]
    [InlineData("-m realm ! --realm 0", false)]
    [InlineData("-m policy --dir in --pol none", true)]
    [InlineData("-m policy --dir in --pol ipsec", false)]
    [InlineData("-m socket", false)]
    [InlineData("-p tcp -m osf --genre Linux", false)]
    [InlineData("-p tcp -m osf ! --genre Linux", false)]
    public void Host_facts_of_the_virtual_host(string rule, bool matched)
    {
        Matched(With("INPUT", rule).Process(In(Tcp4()))).ShouldBe(matched);
    }

    [Theory]
    [InlineData("-m cgroup --cgroup 0", "OUTPUT", true)]
    [InlineData("-m cgroup --cgroup 5", "OUTPUT", false)]
    [InlineData("-m cgroup ! --cgroup 5", "OUTPUT", true)]
    [InlineData("-m cgroup --path /", "OUTPUT", true)]
    [InlineData("-m cgroup ! --cgroup 5", "INPUT", false)]
    public void Cgroup_needs_a_socket_and_sees_the_root_cgroup(string rule, string chain, bool matched)
    {
        Netfilter nf = With(chain, rule);
        PacketResult r = chain == "OUTPUT" ? nf.Process(Out(Tcp4("10.0.0.1", "10.0.0.9"))) : nf.Process(In(Tcp4()));
        Matched(r).ShouldBe(matched);
    }

    [Theory]
    [InlineData("-m addrtype --dst-type LOCAL", "10.0.0.1", true)]
    [InlineData("-m addrtype --dst-type LOCAL", "192.168.1.10", true)]
    [InlineData("-m addrtype --dst-type LOCAL --limit-iface-in", "192.168.1.10", false)]
    [InlineData("-m addrtype --dst-type LOCAL --limit-iface-in", "10.0.0.1", true)]
    [InlineData("-m addrtype --dst-type BROADCAST", "10.0.0.255", true)]
    [InlineData("-m addrtype --src-type UNICAST", "10.0.0.1", true)]
    [InlineData("-m addrtype ! --src-type LOCAL", "10.0.0.1", true)]
    public void Addrtype_from_the_hosts_addresses(string rule, string dst, bool matched)
    {
        Matched(With("PREROUTING", rule).Process(In(Tcp4("10.0.0.9", dst)))).ShouldBe(matched);
    }

    [Theory]
    [InlineData("-m rpfilter", "eth0", "10.0.0.9", true)]
    [InlineData("-m rpfilter", "eth1", "10.0.0.9", false)]
    [InlineData("-m rpfilter --loose", "eth1", "10.0.0.9", true)]
    [InlineData("-m rpfilter --invert", "eth1", "10.0.0.9", true)]
    [InlineData("-m rpfilter", "eth0", "10.0.0.1", false)]
    [InlineData("-m rpfilter --accept-local", "eth0", "10.0.0.1", true)]
    [InlineData("-m rpfilter", "eth0", "8.8.8.8", true)]
    [InlineData("-m rpfilter", "eth1", "192.168.1.7", true)]
    public void Rpfilter_looks_the_source_up(string rule, string dev, string src, bool matched)
    {
        // ipt_rpfilter.c; the rule sits in raw PREROUTING, before the routing decision drops anything.
        Chainwalk.Host.VirtualHost h = MakeHost();
        Load(h, $"*raw\n-A PREROUTING {rule} -j DROP\nCOMMIT\n");
        PacketResult r = new Netfilter(h).Process(In(Tcp4(src, "10.0.0.1"), dev));
        Matched(r).ShouldBe(matched);
    }

    [Fact]
    public void Rpfilter_accepts_dhcp_discover_from_zero_source()
    {
        Chainwalk.Host.VirtualHost h = MakeHost();
        Load(h, "*raw\n-A PREROUTING -m rpfilter --invert -j DROP\nCOMMIT\n");
        Matched(new Netfilter(h).Process(In(PacketBuilder4("0.0.0.0", "255.255.255.255"), "eth1", dstMac: 0xffff_ffff_ffffUL))).ShouldBeFalse();
    }

    private static byte[] PacketBuilder4(string s, string d) => Chainwalk.Wire.PacketBuilder.Ipv4(s, d).Udp(68, 67).Build();

    // 2026-11-21 is a Saturday. 1795219200 = 2026-11-21 00:00:00 UTC.
    [Theory]
    [InlineData("-m time --timestart 08:00 --timestop 17:00", 1795219200 + 9 * 3600, true)]
    [InlineData("-m time --timestart 08:00 --timestop 17:00", 1795219200 + 18 * 3600, false)]
    [InlineData("-m time --weekdays Sat", 1795219200 + 3600, true)]
    [InlineData("-m time --weekdays Fri", 1795219200 + 3600, false)]
    [InlineData("-m time --monthdays 21", 1795219200 + 3600, true)]
    [InlineData("-m time --monthdays 20", 1795219200 + 3600, false)]
    [InlineData("-m time --timestart 22:00 --timestop 02:00 --weekdays Sat", 1795219200 + 3600, true)]
    [InlineData("-m time --timestart 22:00 --timestop 02:00 --weekdays Sat --contiguous", 1795219200 + 3600, false)]
    [InlineData("-m time --timestart 22:00 --timestop 02:00 --weekdays Fri --contiguous", 1795219200 + 3600, true)]
    [InlineData("-m time --timestart 22:00 --timestop 02:00", 1795219200 + 12 * 3600, false)]
    [InlineData("-m time --datestart 2026-11-21T00:00:00 --kerneltz", 1795219200 + 1, true)]
    [InlineData("-m time --datestop 2026-11-20T23:59:59", 1795219200 + 1, false)]
    public void Time_on_the_host_clock(string rule, double at, bool matched)
    {
        Matched(With("INPUT", rule).Process(In(Tcp4(), at: at))).ShouldBe(matched);
    }

    [Fact]
    public void Cluster_without_conntrack_never_matches()
    {
        Matched(With("INPUT", "-m cluster --cluster-total-nodes 2 --cluster-local-node 1 --cluster-hash-seed 0xdeadbeef").Process(In(Tcp4()))).ShouldBeFalse();
        Matched(With("INPUT", "-m cluster --cluster-total-nodes 2 ! --cluster-local-node 1 --cluster-hash-seed 0xdeadbeef").Process(In(Tcp4()))).ShouldBeFalse();
    }

    [Fact]
    public void Jhash_matches_the_kernels_known_values()
    {
        // jhash2 of no words is the initial value run through nothing: JHASH_INITVAL + seed.
        Chainwalk.Extensions.Jhash.Words([], 0).ShouldBe(0xdeadbeefu);
        // Both node assignments are used across a spread of sources (a sanity check of the scaling).
        var nodes = new HashSet<uint>();
        for (uint i = 1; i < 64; i++)
            nodes.Add(Chainwalk.Extensions.Matches.ClusterMatch.NodeOf(IpFamily.V4, [10, 0, 0, (byte)i], 0xdeadbeef, 2));
        nodes.ShouldBe(new HashSet<uint> { 0, 1 });
    }

    [Theory]
    // ldb [9] (IP protocol); jeq #6 → ret #1 else ret #0: matches TCP.
    [InlineData("4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0", true)]
    // jeq #17: UDP only.
    [InlineData("4,48 0 0 9,21 0 1 17,6 0 0 1,6 0 0 0", false)]
    // ldh [22] (TCP dport after a 20-byte header) == 22.
    [InlineData("4,40 0 0 22,21 0 1 22,6 0 0 1,6 0 0 0", true)]
    // ldxb 4*([0]&0xf); ldh [x+2] == 22: the dport through the header length.
    [InlineData("5,177 0 0 0,72 0 0 2,21 0 1 22,6 0 0 65535,6 0 0 0", true)]
    // ld len; jgt #39: length 40 matches.
    [InlineData("4,128 0 0 0,37 0 1 39,6 0 0 1,6 0 0 0", true)]
    // A load beyond the packet ends the program with 0 even though the next instruction would return 1.
    [InlineData("2,32 0 0 1000,6 0 0 1", false)]
    // Division by zero through X ends with 0.
    [InlineData("3,7 0 0 0,60 0 0 0,6 0 0 1", false)]
    // Ancillary SKF_AD_PROTOCOL (0xfffff000): 0x0800.
    [InlineData("4,32 0 0 4294963200,21 0 1 2048,6 0 0 1,6 0 0 0", true)]
    public void Bpf_runs_classic_bytecode_on_the_ip_packet(string code, bool matched)
    {
        Matched(With("INPUT", $"-m bpf --bytecode \"{code}\"").Process(In(Tcp4()))).ShouldBe(matched);
    }
}
