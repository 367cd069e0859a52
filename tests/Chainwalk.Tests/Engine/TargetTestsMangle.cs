using System.Buffers.Binary;
using Chainwalk.Engine;
using Chainwalk.Wire;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.TargetTestHost;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The targets that change the packet or its metadata (xt_mark.c, xt_DSCP.c, xt_HL.c, ipt_ECN.c, xt_TCPMSS.c,
/// xt_TCPOPTSTRIP.c, xt_CHECKSUM.c, ip6t_NPT.c) and the ones that only decide or record (NFQUEUE, TRACE, AUDIT,
/// NFLOG, TPROXY, TEE, SYNPROXY, HMARK): a local packet leaves by eth0 and its bytes are read back.
/// </summary>
public class TargetTestsMangle
{
    private static Packet Out4(string mangleRule, byte[] packet, uint mark = 0)
    {
        var nf = new Netfilter(Create(Table("mangle", mangleRule)));
        PacketResult r = Send(nf, packet, mark);
        r.Fate.ShouldBe(["sent:eth0"]);
        Packet p = r.Outputs.ShouldHaveSingleItem().Packet;
        p.ShouldHaveValidChecksums();
        return p;
    }

    private static Packet Out6(string mangleRule, byte[] packet)
    {
        var nf = new Netfilter(Create(v6Rules: Table("mangle", mangleRule)));
        PacketResult r = Send(nf, packet);
        r.Fate.ShouldBe(["sent:eth0"]);
        Packet p = r.Outputs.ShouldHaveSingleItem().Packet;
        p.ShouldHaveValidChecksums();
        return p;
    }

    private static PacketBuilder Udp4(byte tos = 0, byte ttl = 64) =>
        PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tos(tos).Ttl(ttl).Udp(5000, 53).Payload([1, 2]);

    public static TheoryData<string, byte, byte> TosCases => new()
    {
        // DS field = (old & ~mask) ^ value.
        { "-A POSTROUTING -j TOS --set-tos 0x10/0x3f", 0xc1, 0xd0 },
        { "-A POSTROUTING -j TOS --set-tos 0x10", 0xc1, 0x10 },
        { "-A POSTROUTING -j TOS --and-tos 0x0f", 0xc3, 0x03 },
        { "-A POSTROUTING -j TOS --or-tos 0x08", 0x01, 0x09 },
        { "-A POSTROUTING -j TOS --xor-tos 0xff", 0x0f, 0xf0 },
        // DSCP: the upper six bits, ECN kept.
        { "-A POSTROUTING -j DSCP --set-dscp 0x2e", 0x01, 0xb9 },
        { "-A POSTROUTING -j DSCP --set-dscp-class EF", 0x02, 0xba },
        { "-A POSTROUTING -j DSCP --set-dscp 0", 0xff, 0x03 },
        // ECN --ecn-ip-ect: the two low bits.
        { "-A POSTROUTING -j ECN --ecn-ip-ect 1", 0xb8, 0xb9 },
        { "-A POSTROUTING -j ECN --ecn-ip-ect 0", 0xbb, 0xb8 },
    };

    [Theory]
    [MemberData(nameof(TosCases))]
    public void Tos_dscp_and_ecn_rewrite_the_ds_field(string rule, byte before, byte after)
    {
        Out4(rule, Udp4(before).Build()).Tos.ShouldBe(after);
    }

    [Fact]
    public void Ipv6_tos_and_dscp_rewrite_the_traffic_class()
    {
        Packet p = Out6("-A POSTROUTING -j DSCP --set-dscp 0x0a", PacketBuilder.Ipv6("2001:db8:1::1", "2001:db8:1::2").Tos(0x03).FlowLabel(0xfffff).Udp(1, 2).Build());
        p.Tos.ShouldBe((byte)0x2b);
        p.FlowLabel.ShouldBe(0xfffffu);
    }

    public static TheoryData<string, byte, byte> TtlCases => new()
    {
        { "-A POSTROUTING -j TTL --ttl-set 5", 64, 5 },
        { "-A POSTROUTING -j TTL --ttl-dec 10", 64, 54 },
        { "-A POSTROUTING -j TTL --ttl-dec 10", 3, 0 },
        { "-A POSTROUTING -j TTL --ttl-inc 250", 64, 255 },
        { "-A POSTROUTING -j TTL --ttl-inc 1", 64, 65 },
    };

    [Theory]
    [MemberData(nameof(TtlCases))]
    public void Ttl_is_set_or_moved_and_clamped(string rule, byte before, byte after)
    {
        Out4(rule, Udp4(ttl: before).Build()).Ttl.ShouldBe(after);
    }

    [Fact]
    public void Hl_lowers_the_hop_limit()
    {
        Out6("-A POSTROUTING -j HL --hl-dec 3", PacketBuilder.Ipv6("2001:db8:1::1", "2001:db8:1::2").Udp(1, 2).Build()).Ttl.ShouldBe((byte)61);
    }

    [Fact]
    public void Ecn_tcp_remove_clears_ece_and_cwr()
    {
        Packet p = Out4("-A POSTROUTING -p tcp -j ECN --ecn-tcp-remove",
            PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(1, 2, TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr).Build());
        p.TcpFlags.ShouldBe(TcpFlags.Syn);
    }

    public static TheoryData<string, uint, uint> MarkCases => new()
    {
        { "--set-xmark 0x5/0xff", 0xf0f, 0xf05 },
        { "--set-mark 0x5", 0xf0f, 0x5 },
        { "--set-mark 0x5/0xf", 0xf0f, 0xf05 },
        { "--and-mark 0xf0", 0xfff, 0xf0 },
        { "--or-mark 0x100", 0x1, 0x101 },
        { "--xor-mark 0x3", 0x1, 0x2 },
    };

    [Theory]
    [MemberData(nameof(MarkCases))]
    public void Mark_is_changed_as_xt_mark(string opts, uint before, uint after)
    {
        var nf = new Netfilter(Create(Table("mangle", "-A OUTPUT -j MARK " + opts, "-A POSTROUTING -j AUDIT --type accept")));
        PacketResult r = Send(nf, Udp4().Build(), before);
        r.Logs.ShouldHaveSingleItem().ShouldBe($"audit: type=1324 mark=0x{after:x} saddr=10.0.0.1 daddr=10.0.0.2 proto=17");
    }

    [Fact]
    public void Audit_writes_mark_zero_without_0x_and_the_upper_protocol_of_ipv6()
    {
        var nf = new Netfilter(Create(v6Rules: Table("filter", "-A OUTPUT -j AUDIT --type drop")));
        byte[] pkt = PacketBuilder.Ipv6("2001:db8:1::1", "2001:db8:1::2").Ipv6Extension(IpProtocol.DestinationOptions, [1, 4, 0, 0, 0, 0]).Tcp(1, 2).Build();
        Send(nf, pkt).Logs.ShouldHaveSingleItem().ShouldBe("audit: type=1324 mark=0 saddr=2001:db8:1::1 daddr=2001:db8:1::2 proto=6");
    }

    public static TheoryData<string, ushort?, ushort?, int> MssCases => new()
    {
        // Lowered, never raised.
        { "--set-mss 1200", 1460, 1200, 0 },
        { "--set-mss 1200", 1000, 1000, 0 },
        // Added when missing: at most 536 (RFC 1122's default), and the packet grows by 4.
        { "--set-mss 1200", null, 536, 4 },
        { "--set-mss 500", null, 500, 4 },
        // Clamp: min(eth0 MTU 1500, MTU back to 10.0.0.1 via lo) - 40.
        { "--clamp-mss-to-pmtu", 1460, 1460, 0 },
        { "--clamp-mss-to-pmtu", 8960, 1460, 0 },
    };

    [Theory]
    [MemberData(nameof(MssCases))]
    public void Tcpmss_sets_or_adds_the_mss_option(string opts, ushort? mss, ushort? expected, int growth)
    {
        PacketBuilder b = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Syn, 7);
        if (mss is ushort m) b.Mss(m);
        byte[] syn = b.Build();
        Packet p = Out4("-A POSTROUTING -p tcp -j TCPMSS " + opts, syn);
        p.TotalLength.ShouldBe(syn.Length + growth);
        p.ReadTcpOptions().Mss.ShouldBe(expected);
    }

    [Fact]
    public void Tcpmss_does_not_add_an_option_when_data_follows_the_header()
    {
        byte[] syn = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Syn, 7).Payload([1, 2, 3]).Build();
        Packet p = Out4("-A POSTROUTING -p tcp -j TCPMSS --set-mss 1200", syn);
        p.TotalLength.ShouldBe(syn.Length);
        p.ReadTcpOptions().Mss.ShouldBeNull();
    }

    [Fact]
    public void Tcpmss_clamps_to_a_smaller_link_mtu_and_ipv6_subtracts_60()
    {
        var nf = new Netfilter(Create(v6Rules: Table("mangle", "-A POSTROUTING -p tcp -j TCPMSS --clamp-mss-to-pmtu"), extra: "ip link set eth0 mtu 1400"));
        byte[] syn = PacketBuilder.Ipv6("2001:db8:1::1", "2001:db8:1::2").Tcp(40000, 80, TcpFlags.Syn, 7).Mss(1440).Build();
        Packet p = Send(nf, syn).Outputs.ShouldHaveSingleItem().Packet;
        p.ReadTcpOptions().Mss.ShouldBe((ushort)1340);
        p.ShouldHaveValidChecksums();
    }

    [Fact]
    public void Tcpoptstrip_overwrites_the_options_with_nops()
    {
        byte[] syn = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Tcp(40000, 80, TcpFlags.Syn, 7).Mss(1460).TcpOption(4).TcpOption(1).TcpOption(3, [7]).Build();
        Packet p = Out4("-A POSTROUTING -p tcp -j TCPOPTSTRIP --strip-options mss,wscale", syn);
        Hex(p.Bytes.AsSpan(40, 12)).ShouldBe("01010101" + "0402" + "01" + "010101" + "0000");
    }

    [Fact]
    public void Checksum_fill_computes_a_local_packets_missing_checksum()
    {
        byte[] b = Udp4().Build();
        b[26] = 0x12;
        b[27] = 0x34;
        Out4("-A POSTROUTING -p udp -j CHECKSUM --checksum-fill", b);
    }

    [Fact]
    public void Snpt_translates_the_prefix_checksum_neutrally_as_rfc_6296_3_6()
    {
        // RFC 6296 section 3.6: FD01:0203:0405:0001::1234 in FD01:0203:0405::/48 becomes 2001:0DB8:0001:D550::1234.
        Packet p = Out6("-A POSTROUTING -j SNPT --src-pfx fd01:203:405::/48 --dst-pfx 2001:db8:1::/48",
            PacketBuilder.Ipv6("fd01:203:405:1::1234", "2001:db8:1::2").Tcp(1, 2).Build());
        p.Source.ShouldBe(TargetTestsReject.Ip6("2001:db8:1:d550::1234"));
    }

    [Fact]
    public void Dnpt_translates_back()
    {
        var nf = new Netfilter(Create(v6Rules: Table("mangle", "-A PREROUTING -j DNPT --src-pfx 2001:db8:1::/48 --dst-pfx fd01:203:405::/48")));
        nf.RecordTrace = true;
        PacketResult r = Receive(nf, PacketBuilder.Ipv6("2001:db8:9::9", "2001:db8:1:d550::1234").Udp(1, 2).Build());
        r.Trace!.OfType<ChangeEvent>().ShouldContain(e => e.What.Contains("fd01:203:405:1::1234", StringComparison.Ordinal));
    }

    public static TheoryData<string, string> QueueCases => new()
    {
        { "-A INPUT -j NFQUEUE", "queued:0" },
        { "-A INPUT -j NFQUEUE --queue-num 3", "queued:3" },
        { "-A INPUT -j NFQUEUE --queue-num 3 --queue-bypass", "queued:3" },
        { "-A INPUT -j NFQUEUE --queue-balance 4:5 --queue-cpu-fanout", "queued:4" },
    };

    [Theory]
    [MemberData(nameof(QueueCases))]
    public void Nfqueue_hands_the_packet_to_its_queue(string rule, string fate)
    {
        var nf = new Netfilter(Create(Table("filter", rule)));
        Receive(nf, PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Udp(1, 2).Build()).Fate.ShouldBe([fate]);
    }

    [Fact]
    public void Nfqueue_balance_puts_both_directions_in_the_same_queue()
    {
        var nf = new Netfilter(Create(Table("filter", "-A INPUT -j NFQUEUE --queue-balance 10:17", "-A OUTPUT -j NFQUEUE --queue-balance 10:17")));
        var seen = new HashSet<string>();
        for (int i = 2; i < 40; i++)
        {
            string peer = "10.0.0." + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            string inFate = Receive(nf, PacketBuilder.Ipv4(peer, "10.0.0.1").Udp(1, 2).Build()).Fate.ShouldHaveSingleItem();
            string outFate = Send(nf, PacketBuilder.Ipv4("10.0.0.1", peer).Udp(2, 1).Build()).Fate.ShouldHaveSingleItem();
            outFate.ShouldBe(inFate);
            int q = int.Parse(inFate["queued:".Length..], System.Globalization.CultureInfo.InvariantCulture);
            q.ShouldBeInRange(10, 17);
            seen.Add(inFate);
        }
        seen.Count.ShouldBeGreaterThan(1);
    }

    [Fact]
    public void Trace_turns_on_trace_lines()
    {
        var nf = new Netfilter(Create(Table("raw", "-A OUTPUT -j TRACE")));
        PacketResult r = Send(nf, Udp4().Build());
        r.Logs.ShouldNotBeEmpty();
        r.Logs.ShouldAllBe(l => l.StartsWith("TRACE: ", StringComparison.Ordinal));
    }

    [Fact]
    public void Tproxy_drops_the_packet_as_no_socket_exists()
    {
        var nf = new Netfilter(Create(Table("mangle", "-A PREROUTING -p tcp -j TPROXY --on-port 8080 --on-ip 127.0.0.1")));
        Receive(nf, PacketBuilder.Ipv4("10.0.0.2", "192.0.2.1").Tcp(1, 80).Build()).Fate.ShouldBe(["dropped"]);
    }

    [Fact]
    public void Tee_sends_a_copy_to_the_gateway_with_one_less_ttl_at_prerouting()
    {
        var nf = new Netfilter(Create(Table("mangle", "-A PREROUTING -j TEE --gateway 192.168.1.20")));
        byte[] pkt = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Ttl(30).Udp(1, 2).Build();
        PacketResult r = Receive(nf, pkt);
        r.Fate.ShouldBe(["delivered-local"]);
        OutputPacket copy = r.Outputs.ShouldHaveSingleItem();
        copy.Interface.ShouldBe("eth1");
        copy.Kind.ShouldBe("tee");
        copy.Packet.Ttl.ShouldBe((byte)29);
        copy.Packet.Destination.ShouldBe(TargetTestsReject.Ip("10.0.0.1"));
        copy.Packet.ShouldHaveValidChecksums();
    }

    [Fact]
    public void Tee_in_output_keeps_the_ttl_and_the_original_goes_on()
    {
        var nf = new Netfilter(Create(Table("mangle", "-A OUTPUT -j TEE --gateway 192.168.1.20")));
        PacketResult r = Send(nf, Udp4(ttl: 30).Build());
        r.Fate.ShouldBe(["sent:eth0"]);
        r.Outputs.Count.ShouldBe(2);
        r.Outputs.ShouldContain(o => o.Kind == "tee" && o.Interface == "eth1" && o.Packet.Ttl == 30 && o.Packet.DontFragment);
    }

    [Fact]
    public void Synproxy_answers_a_syn_with_a_cookie_and_accepts_the_matching_ack()
    {
        var nf = new Netfilter(Create(Table("filter", "-A INPUT -p tcp -j SYNPROXY --mss 1460 --wscale 7 --sack-perm --timestamp")));
        byte[] syn = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tcp(40000, 80, TcpFlags.Syn, 1000).Mss(1400)
            .TcpOption(4).TcpOption(8, [0, 0, 0, 9, 0, 0, 0, 0]).TcpOption(1).TcpOption(3, [6]).Build();
        PacketResult r = Receive(nf, syn);
        r.Fate.ShouldBe(["stolen"]);
        Packet synack = r.Outputs.ShouldHaveSingleItem().Packet;
        synack.ShouldHaveValidChecksums();
        synack.TcpFlags.ShouldBe(TcpFlags.Syn | TcpFlags.Ack);
        synack.AcknowledgmentNumber.ShouldBe(1001u);
        synack.Window.ShouldBe((ushort)0);
        synack.DontFragment.ShouldBeTrue();
        TcpOptions o = synack.ReadTcpOptions();
        o.Mss.ShouldBe((ushort)1460);
        o.WindowScale.ShouldBe((byte)7);
        o.SackPermitted.ShouldBeTrue();
        o.TimestampEcho.ShouldBe(9u);
        // The client's window scale, SACK in the timestamp's low bits.
        (o.TimestampValue!.Value & 0x3f).ShouldBe(6u | 0x10u);

        uint cookie = synack.SequenceNumber;
        byte[] ack = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tcp(40000, 80, TcpFlags.Ack, 1001, cookie + 1, 502)
            .TcpOption(1).TcpOption(1).TcpOption(8, [0, 0, 0, 10, .. BitConverter.GetBytes(BinaryPrimitives.ReverseEndianness(o.TimestampValue.Value))]).Build();
        nf.RecordTrace = true;
        PacketResult ra = Receive(nf, ack);
        ra.Fate.ShouldBe(["stolen"]);
        ra.Trace!.OfType<GeneratedEvent>().ShouldNotBeEmpty();

        byte[] forged = PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1").Tcp(40000, 80, TcpFlags.Ack, 1001, cookie + 12345).Build();
        Receive(nf, forged).Fate.ShouldBe(["dropped"]);
    }

    [Fact]
    public void Hmark_marks_both_directions_alike_within_modulus_and_offset()
    {
        var nf = new Netfilter(Create(Table("mangle",
            "-A PREROUTING -j HMARK --hmark-tuple src,dst,sport,dport,proto --hmark-mod 16 --hmark-offset 100 --hmark-rnd 0xcafe",
            "-A PREROUTING -j AUDIT --type accept",
            "-A OUTPUT -j HMARK --hmark-tuple src,dst,sport,dport,proto --hmark-mod 16 --hmark-offset 100 --hmark-rnd 0xcafe",
            "-A OUTPUT -j AUDIT --type accept")));
        var marks = new HashSet<string>();
        for (int i = 2; i < 30; i++)
        {
            string peer = "10.0.0." + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            string a = Receive(nf, PacketBuilder.Ipv4(peer, "10.0.0.1").Tcp(40000, 22).Build()).Logs.ShouldHaveSingleItem();
            string b = Send(nf, PacketBuilder.Ipv4("10.0.0.1", peer).Tcp(22, 40000).Build()).Logs.ShouldHaveSingleItem();
            string ma = a.Split(' ')[2], mb = b.Split(' ')[2];
            ma.ShouldBe(mb);
            uint mark = Convert.ToUInt32(ma["mark=".Length..], 16);
            mark.ShouldBeInRange(100u, 115u);
            marks.Add(ma);
        }
        marks.Count.ShouldBeGreaterThan(1);
    }

    [Fact]
    public void Idletimer_restarts_its_labels_timer_with_each_packet()
    {
        var nf = new Netfilter(Create(Table("filter", "-A OUTPUT -j IDLETIMER --timeout 30 --label web")));
        Send(nf, Udp4().Build());
        var t = nf.State.Get("idletimer:web", () => new Chainwalk.Extensions.Targets.IdletimerTarget.IdleTimer());
        t.Expires.ShouldBe(nf.State.Now + 30);
        nf.Process(new PacketInput { Bytes = Udp4().Build(), At = nf.State.Now + 10 });
        t.Expires.ShouldBe(nf.State.Now + 30);
    }

    [Fact]
    public void Rateest_counts_into_its_estimator_and_averages_per_interval()
    {
        // --rateest-interval 1s: a tick every second; --rateest-ewmalog 2s: each tick moves the average half way.
        var nf = new Netfilter(Create(Table("filter", "-A OUTPUT -j RATEEST --rateest-name est --rateest-interval 1s --rateest-ewmalog 2s")));
        double t0 = nf.State.Now;
        for (int s = 0; s < 20; s++)
        for (int k = 0; k < 10; k++)
            nf.Process(new PacketInput { Bytes = Udp4().Build(), At = t0 + s + k * 0.01 });
        var e = nf.State.Get<RateEstimator>("rateest:est", () => throw new InvalidOperationException("no estimator"));
        e.TotalPackets.ShouldBe(200ul);
        e.Advance(t0 + 20);
        // 10 packets of 30 bytes a second: the average approaches 10 pps / 300 Bps from below.
        e.PacketsPerSecond.ShouldBeInRange(8ul, 10ul);
        e.BytesPerSecond.ShouldBeInRange(250ul, 300ul);
    }

    [Fact]
    public void Classify_led_connsecmark_nflog_continue_to_the_next_rule()
    {
        var nf = new Netfilter(Create(Table("mangle",
            "-A POSTROUTING -j CLASSIFY --set-class 1:10",
            "-A POSTROUTING -j NFLOG --nflog-group 5 --nflog-prefix x",
            "-A POSTROUTING -j CONNSECMARK --save",
            "-A POSTROUTING -j AUDIT --type accept")));
        Send(nf, Udp4().Build()).Logs.ShouldHaveSingleItem().ShouldStartWith("audit: type=1324");
    }

    [Fact]
    public void Jhash_three_words_is_jhash2_of_the_three_words()
    {
        // jhash_3words(a, b, c, iv) and jhash2({a, b, c}, 3, iv) are the same hash in include/linux/jhash.h.
        foreach ((uint a, uint b, uint c, uint iv) in new[] { (1u, 2u, 3u, 0u), (0xc0a80001u, 0x0a000001u, 6u, 0xcafeu), (0u, 0u, 0u, 0xffffffffu) })
            Chainwalk.Extensions.Jhash.ThreeWords(a, b, c, iv).ShouldBe(Chainwalk.Extensions.Jhash.Words([a, b, c], iv));
    }
}
