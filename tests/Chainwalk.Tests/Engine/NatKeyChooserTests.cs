using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Nat;
using Chainwalk.Net;
using Chainwalk.Tests.Conformance;
using Chainwalk.Tests.Nat;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The conformance harness' NAT pick hook (<see cref="RuntimeState.NatKeyChooser"/>): where the kernel starts a port
/// search at a random offset, the engine takes the kernel's pick only when it is a free key inside the range
/// nf_nat_l4proto_unique_tuple would search, and reports every other pick, so a wrong range or a wrong "taken"
/// cannot hide behind the hook.
/// </summary>
public sealed class NatKeyChooserTests
{
    private const string Rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        + "-A POSTROUTING -o eth0 -p tcp -j SNAT --to-source 198.51.100.2:2000-2010\n"
        + "-A POSTROUTING -o eth0 -p udp -j MASQUERADE\nCOMMIT\n";

    private sealed class Fixed(ushort key) : INatKeyChooser
    {
        public List<string> Refusals { get; } = new();

        public int Asked { get; private set; }

        public bool TryChoose(in ConnTuple original, NatManip manip, out ushort k)
        {
            Asked++;
            k = key;
            return true;
        }

        public void Refused(in ConnTuple original, NatManip manip, ushort k, string why) => Refusals.Add($"{k}: {why}");
    }

    private static byte[] Syn(string src, ushort sport) => PacketBuilder.Ipv4(src, "93.184.216.34").Tcp(sport, 80, TcpFlags.Syn, 1000, 0).Build();

    private static ushort SourcePort(PacketResult r) => r.Outputs.ShouldHaveSingleItem().Packet.SourcePort;

    [Theory]
    [InlineData(2000, null)]
    [InlineData(2005, null)]
    [InlineData(2010, null)]
    [InlineData(1999, "1999: outside 2000-2010")]
    [InlineData(2011, "2011: outside 2000-2010")]
    [InlineData(40000, "40000: outside 2000-2010")]
    public void A_pick_inside_the_port_range_is_taken_and_one_outside_is_refused(int pick, string? refusal)
    {
        var rig = new NatRig(Rules);
        var chooser = new Fixed((ushort)pick);
        rig.Nf.State.NatKeyChooser = chooser;
        ushort port = SourcePort(rig.In("eth1", Syn("10.0.1.20", 40000)));
        chooser.Asked.ShouldBe(1);
        if (refusal is null)
        {
            chooser.Refusals.ShouldBeEmpty();
            port.ShouldBe((ushort)pick);
        }
        else
        {
            chooser.Refusals.ShouldBe([refusal]);
            port.ShouldBeInRange((ushort)2000, (ushort)2010);
        }
    }

    [Fact]
    public void A_pick_another_connection_holds_is_refused()
    {
        var rig = new NatRig(Rules);
        var chooser = new Fixed(2003);
        rig.Nf.State.NatKeyChooser = chooser;
        SourcePort(rig.In("eth1", Syn("10.0.1.20", 40000))).ShouldBe((ushort)2003);
        ushort second = SourcePort(rig.In("eth1", Syn("10.0.1.21", 40000)));
        chooser.Refusals.ShouldBe(["2003: the tuple is taken by another connection"]);
        second.ShouldNotBe((ushort)2003);
    }

    [Fact]
    public void A_kept_source_port_asks_for_no_pick()
    {
        // MASQUERADE without --to-ports keeps a free source port: no search, so nothing is asked.
        var rig = new NatRig(Rules);
        var chooser = new Fixed(5000);
        rig.Nf.State.NatKeyChooser = chooser;
        byte[] udp = PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").Udp(40000, 53).Build();
        SourcePort(rig.In("eth1", udp)).ShouldBe((ushort)40000);
        chooser.Asked.ShouldBe(0);
        // The same source port from another host clashes: the search starts, and takes the pick.
        byte[] udp2 = PacketBuilder.Ipv4("10.0.1.21", "93.184.216.34").Udp(40000, 53).Build();
        SourcePort(rig.In("eth1", udp2)).ShouldBe((ushort)5000);
        chooser.Asked.ShouldBe(1);
        chooser.Refusals.ShouldBeEmpty();
    }

    private const string FixedPort = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        + "-A POSTROUTING -o eth0 -p tcp -j SNAT --to-source 198.51.100.2:40000-40000\nCOMMIT\n";

    private static byte[] Tcp(string src, ushort sport, TcpFlags flags, uint seq, uint ack) =>
        PacketBuilder.Ipv4(src, "93.184.216.34").Tcp(sport, 80, flags, seq, ack).Build();

    private static byte[] Back(TcpFlags flags, uint seq, uint ack) =>
        PacketBuilder.Ipv4("93.184.216.34", "198.51.100.2").Tcp(80, 40000, flags, seq, ack).Build();

    [Theory]
    // Recorded (Linux 6.18, seed 51 case 1911 of the long conformance run): SNAT to one fixed port; the first connection
    // is in TIME_WAIT when a SYN from another host needs the same reply tuple. nf_nat_used_tuple_harder evicts the
    // closing entry when the new SYN's sequence lies after the old connection's end, else the SYN dies at confirmation.
    [InlineData(5000u, true)]
    [InlineData(900u, false)]
    public void A_fixed_port_snat_evicts_a_closing_connection_when_the_new_sequence_has_advanced(uint newSeq, bool evicted)
    {
        var rig = new NatRig(FixedPort);
        rig.In("eth1", Tcp("10.0.1.20", 40480, TcpFlags.Syn, 1000, 0)).Outputs.Count.ShouldBe(1);
        rig.In("eth0", Back(TcpFlags.Syn | TcpFlags.Ack, 7000, 1001));
        rig.In("eth1", Tcp("10.0.1.20", 40480, TcpFlags.Ack, 1001, 7001));
        rig.In("eth1", Tcp("10.0.1.20", 40480, TcpFlags.Fin | TcpFlags.Ack, 1001, 7001));
        rig.In("eth0", Back(TcpFlags.Fin | TcpFlags.Ack, 7001, 1002));
        rig.In("eth1", Tcp("10.0.1.20", 40480, TcpFlags.Ack, 1002, 7002));
        rig.Listing.ShouldStartWith("tcp      6 120 TIME_WAIT src=10.0.1.20 ");

        PacketResult syn = rig.In("eth1", Tcp("10.0.1.21", 40480, TcpFlags.Syn, newSeq, 0));
        if (evicted)
        {
            NatRig.Outputs(syn).ShouldBe("eth0 198.51.100.2:40000 > 93.184.216.34:80 S");
            rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=10.0.1.21 dst=93.184.216.34 sport=40480 dport=80 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 sport=80 dport=40000 mark=0 use=1");
        }
        else
        {
            syn.Outputs.ShouldBeEmpty();
            rig.Listing.ShouldStartWith("tcp      6 120 TIME_WAIT src=10.0.1.20 ");
        }
    }

    [Theory]
    // conntrack -L lines as conntrack-tools 1.4.7 prints them (recorded, Linux 6.18), the original tuple, and the manip's key.
    [InlineData("tcp      6 119 SYN_SENT src=10.1.0.3 dst=10.2.0.2 sport=1024 dport=80 [UNREPLIED] src=10.2.0.2 dst=10.2.0.1 sport=80 dport=2264 mark=0 use=1",
        "src=10.1.0.3 dst=10.2.0.2 sport=1024 dport=80", "dport", "2264")]
    [InlineData("icmp     1 29 src=10.1.0.2 dst=10.2.0.3 type=8 code=0 id=4660 [UNREPLIED] src=10.2.0.3 dst=10.2.0.1 type=0 code=0 id=17 mark=0 use=1",
        "src=10.1.0.2 dst=10.2.0.3 type=8 code=0 id=4660", "id", "17")]
    [InlineData("udp      17 29 src=fd01::2 dst=fd02::3 sport=53 dport=123 packets=1 bytes=60 src=fd02::3 dst=fd02::1 sport=123 dport=2001 packets=0 bytes=0 mark=0 use=1",
        "src=fd01::2 dst=fd02::3 sport=53 dport=123", "sport", "123")]
    public void Kernel_listing_lines_give_the_original_tuple_and_the_reply(string line, string original, string field, string value)
    {
        RecordedKernelCases.KernelNatPicks.TryParse(line, out string orig, out Dictionary<string, string> reply).ShouldBeTrue();
        orig.ShouldBe(original);
        reply[field].ShouldBe(value);
    }

    [Fact]
    public void The_harness_takes_the_kernels_pick_for_the_same_connection_only()
    {
        var picks = new RecordedKernelCases.KernelNatPicks();
        picks.Next(["tcp      6 119 SYN_SENT src=10.0.1.20 dst=93.184.216.34 sport=40000 dport=80 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 sport=80 dport=2007 mark=0 use=1"]);
        IpNet.TryParseStrict("10.0.1.20", IpFamily.V4, out UInt128 client).ShouldBeTrue();
        IpNet.TryParseStrict("93.184.216.34", IpFamily.V4, out UInt128 server).ShouldBeTrue();
        var t = new ConnTuple(IpFamily.V4, IpProtocol.Tcp, client, server, 40000, 80);
        RecordedKernelCases.KernelNatPicks.TupleText(t).ShouldBe("src=10.0.1.20 dst=93.184.216.34 sport=40000 dport=80");
        picks.TryChoose(t, NatManip.Src, out ushort key).ShouldBeTrue();
        key.ShouldBe((ushort)2007);
        picks.TryChoose(t with { SourcePort = 40001 }, NatManip.Src, out _).ShouldBeFalse();

        var rig = new NatRig(Rules);
        picks.Next(["tcp      6 119 SYN_SENT src=10.0.1.20 dst=93.184.216.34 sport=40000 dport=80 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 sport=80 dport=2007 mark=0 use=1"]);
        rig.Nf.State.NatKeyChooser = picks;
        SourcePort(rig.In("eth1", Syn("10.0.1.20", 40000))).ShouldBe((ushort)2007);
        picks.Taken.ShouldBe(1);
        picks.Refusals.ShouldBeEmpty();
    }
}
