using Chainwalk.Conntrack;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// A new connection's SYN in one step (<see cref="TcpTracker.NewSyn"/>) against tcp_new then the general packet step
/// (<see cref="TcpTracker.New"/>, <see cref="TcpTracker.Packet(ConnEntry, Packet, int, VirtualHost, ConntrackSysctls, double, out double)"/>):
/// random SYNs (flag sets of index SYN, sequence numbers anywhere, zero and full windows, window scale, SACK-permitted, MSS,
/// timestamps, odd option bytes, payloads) on entries with leftover TCP state and random status bits, under timeout and
/// retransmission sysctls on both sides of each other; the outcome, the timeout and the whole TCP state compared.
/// </summary>
public class NewSynTests
{
    private static readonly TcpFlags[] SynFlags =
    [
        TcpFlags.Syn, TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, TcpFlags.Syn | TcpFlags.Psh, TcpFlags.Syn | TcpFlags.Urg,
        TcpFlags.Syn | TcpFlags.Fin,
    ];

    private static string Describe(ConnEntry ct)
    {
        ref TcpConnState s = ref ct.Tcp;
        return $"{ct.HasTcp} {s.State} last {s.LastDir}/{s.LastIndex} seq {s.LastSeq} ack {s.LastAck} end {s.LastEnd} win {s.LastWin} ws {s.LastWscale} lf {s.LastFlags} re {s.Retrans} | "
            + $"{s.Seen[0].End} {s.Seen[0].MaxEnd} {s.Seen[0].MaxWin} {s.Seen[0].MaxAck} {s.Seen[0].Scale} {s.Seen[0].Flags} | "
            + $"{s.Seen[1].End} {s.Seen[1].MaxEnd} {s.Seen[1].MaxWin} {s.Seen[1].MaxAck} {s.Seen[1].Scale} {s.Seen[1].Flags} | {ct.Status} {ct.Timeout}";
    }

    private static ConnEntry Entry(Random r)
    {
        var ct = new ConnEntry(new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000001, 0x0a000002, 40000, 80),
            new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000002, 0x0a000001, 80, 40000));
        if (r.Next(2) == 0)
        {
            // Leftover state (both steps must overwrite all of it).
            var st = new TcpConnState
            {
                State = (TcpCtState)r.Next(0, TcpTracker.StateCount),
                LastDir = 1,
                LastIndex = (byte)r.Next(0, 6),
                LastSeq = (uint)r.Next(),
                LastAck = (uint)r.Next(),
                LastEnd = (uint)r.Next(),
                LastWin = (ushort)r.Next(1, 65536),
                LastWscale = (byte)r.Next(1, 15),
                LastFlags = (byte)r.Next(1, 256),
                Retrans = (byte)r.Next(1, 256),
            };
            st.Seen[0] = new TcpSide { End = (uint)r.Next(), MaxEnd = (uint)r.Next(), MaxWin = (uint)r.Next(), MaxAck = (uint)r.Next(), Scale = 3, Flags = 0x3f };
            st.Seen[1] = new TcpSide { End = (uint)r.Next(), MaxEnd = (uint)r.Next(), MaxWin = (uint)r.Next(), MaxAck = (uint)r.Next(), Scale = 5, Flags = 0x3f };
            ct.SetTcp(st);
        }
        ct.Status = r.Next(3) == 0 ? (ConnStatus)r.Next(0, 1 << 11) : ConnStatus.None;
        ct.Timeout = r.Next(3) == 0 ? r.Next(0, 500_000) : 0;
        return ct;
    }

    private static Packet Syn(Random r)
    {
        uint seq = r.Next(4) switch
        {
            0 => 0,
            1 => uint.MaxValue - (uint)r.Next(0, 3),
            2 => 0x7fff_ffffu + (uint)r.Next(-2, 3),
            _ => (uint)r.NextInt64(0, 1L << 32),
        };
        uint ack = r.Next(3) == 0 ? 0 : (uint)r.NextInt64(0, 1L << 32);
        ushort win = r.Next(4) switch
        {
            0 => 0,
            1 => 65535,
            _ => (ushort)r.Next(1, 65536),
        };
        PacketBuilder pb = PacketBuilder.Ipv4(0x0a000001, 0x0a000002).Tcp(40000, 80, SynFlags[r.Next(SynFlags.Length)], seq, ack, win);
        int options = r.Next(0, 5);
        for (int i = 0; i < options; i++)
        {
            switch (r.Next(8))
            {
                case 0: pb.TcpOption(TcpOptionKind.Mss, [0x05, 0xb4]); break;
                case 1: pb.TcpOption(TcpOptionKind.WindowScale, [(byte)r.Next(0, 20)]); break;
                case 2: pb.TcpOption(TcpOptionKind.SackPermitted); break;
                case 3: pb.TcpOption(TcpOptionKind.Timestamp, new byte[8]); break;
                case 4: pb.TcpOption(TcpOptionKind.Nop); break;
                case 5: pb.TcpOption(TcpOptionKind.WindowScale, [1, 2]); break; // a wrong size: not taken
                case 6: pb.TcpOption(TcpOptionKind.SackPermitted, [0]); break; // likewise
                default: pb.TcpOption(TcpOptionKind.End); break;
            }
        }
        if (r.Next(3) == 0) pb.PayloadLength(r.Next(1, 1400));
        return pb.BuildPacket();
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 1)]
    [InlineData(3, 2)]
    [InlineData(4, 3)]
    public void A_new_connections_SYN_in_one_step_is_tcp_new_and_the_general_step(int seed, int sysctls)
    {
        var host = new VirtualHost();
        switch (sysctls)
        {
            case 1:
                // SYN_SENT's timeout above the retransmission cap (the cap applies), and no retransmissions allowed.
                host.Sysctls["net.netfilter.nf_conntrack_tcp_timeout_syn_sent"] = "400";
                host.Sysctls["net.netfilter.nf_conntrack_tcp_max_retrans"] = "0";
                break;
            case 2:
                host.Sysctls["net.netfilter.nf_conntrack_tcp_timeout_syn_sent"] = "7";
                host.Sysctls["net.netfilter.nf_conntrack_tcp_timeout_max_retrans"] = "5";
                host.Sysctls["net.netfilter.nf_conntrack_tcp_be_liberal"] = "1";
                break;
            case 3:
                host.Sysctls["net.netfilter.nf_conntrack_tcp_timeout_max_retrans"] = "30";
                host.Sysctls["net.netfilter.nf_conntrack_tcp_loose"] = "0";
                break;
        }
        ConntrackSysctls sys = ConntrackSysctls.For(host);
        var r = new Random(seed);
        var timeouts = new HashSet<double>();
        int scaled = 0, sack = 0;
        for (int i = 0; i < 4000; i++)
        {
            ConnEntry fast = Entry(r);
            var general = new ConnEntry(fast.Original, fast.Reply);
            if (fast.HasTcp) general.SetTcp(fast.Tcp);
            general.Status = fast.Status;
            general.Timeout = fast.Timeout;
            Packet p = Syn(r);
            string what = $"case {i} flags {p.TcpFlags} seq {p.SequenceNumber} ack {p.AcknowledgmentNumber} win {p.Window} len {p.PayloadLength} opts {p.TransportHeaderLength}";
            TcpTracker.Index(p.TcpFlags).ShouldBe(TcpTracker.SynSet, what);

            TcpTracker.NewSyn(fast, p, sys, out double ta);
            TcpTracker.New(general, p, host).ShouldBeTrue(what);
            TcpTracker.Packet(general, p, 0, host, sys, 5000, out double tb).ShouldBe(TcpTracker.Outcome.Accept, what);
            ta.ShouldBe(tb, what);
            Describe(fast).ShouldBe(Describe(general), what);
            timeouts.Add(ta);
            if ((fast.Tcp.Seen[0].Flags & TcpSide.FlagWindowScale) != 0) scaled++;
            if ((fast.Tcp.Seen[0].Flags & TcpSide.FlagSackPerm) != 0) sack++;
        }
        // The options were read in a good share of the cases.
        scaled.ShouldBeGreaterThan(200);
        sack.ShouldBeGreaterThan(200);
        timeouts.Count.ShouldBe(1);
    }
}
