using Chainwalk.Conntrack;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Conntrack;

/// <summary>
/// The TCP tracker's ESTABLISHED-ACK path (<see cref="TcpTracker.Packet(ConnEntry, Packet, int, VirtualHost, ConntrackSysctls, double, out double)"/>
/// takes an ACK without SYN, FIN or RST of an ESTABLISHED connection by a shorter way) against the general path
/// (<see cref="TcpTracker.PacketGeneral"/>, nf_conntrack_tcp_packet with every case): random connection states and packets,
/// both paths on copies of the same entry, the outcome, the timeout, the entry's status and the whole TCP state compared.
/// </summary>
public class EstablishedAckTests
{
    private static readonly TcpFlags[] FlagSets =
    [
        TcpFlags.Ack, TcpFlags.Ack | TcpFlags.Psh, TcpFlags.Ack | TcpFlags.Ece | TcpFlags.Cwr, TcpFlags.Ack | TcpFlags.Urg,
        TcpFlags.Ack | TcpFlags.Fin, TcpFlags.Ack | TcpFlags.Rst, TcpFlags.Rst, TcpFlags.Syn, TcpFlags.Syn | TcpFlags.Ack,
        TcpFlags.Fin, TcpFlags.None, TcpFlags.Ack | TcpFlags.Syn | TcpFlags.Fin,
    ];

    private static uint Near(Random r, uint around) => r.Next(4) switch
    {
        0 => around,
        1 => around + (uint)r.Next(-3, 4),
        2 => around + (uint)r.Next(-70_000, 70_000),
        _ => (uint)r.NextInt64(0, 1L << 32),
    };

    private static TcpSide RandomSide(Random r, uint baseSeq)
    {
        var s = new TcpSide
        {
            End = Near(r, baseSeq),
            MaxWin = r.Next(5) == 0 ? 0u : (uint)r.Next(1, 200_000),
            Scale = (byte)r.Next(0, 15),
            Flags = (byte)r.Next(0, 64),
        };
        s.MaxEnd = r.Next(3) == 0 ? Near(r, s.End) : s.End + (uint)r.Next(0, 100_000);
        s.MaxAck = Near(r, baseSeq);
        return s;
    }

    private static (ConnEntry Ct, Packet P, int Dir) Case(Random r)
    {
        var ct = new ConnEntry(new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000001, 0x0a000002, 40000, 80),
            new ConnTuple(IpFamily.V4, IpProtocol.Tcp, 0x0a000002, 0x0a000001, 80, 40000));
        uint a = (uint)r.NextInt64(0, 1L << 32), b = (uint)r.NextInt64(0, 1L << 32);
        int dir = r.Next(2);
        var st = new TcpConnState
        {
            State = r.Next(4) == 0 ? (TcpCtState)r.Next(0, TcpTracker.StateCount) : TcpCtState.Established,
            LastDir = (byte)r.Next(2),
            LastIndex = (byte)r.Next(0, 6),
            LastSeq = Near(r, a),
            LastAck = Near(r, b),
            LastEnd = Near(r, a),
            LastWin = (ushort)(r.Next(4) == 0 ? 0 : r.Next(0, 65536)),
            LastWscale = (byte)r.Next(0, 15),
            LastFlags = (byte)r.Next(0, 256),
            Retrans = (byte)(r.Next(3) == 0 ? r.Next(0, 256) : r.Next(0, 5)),
        };
        st.Seen[0] = RandomSide(r, a);
        st.Seen[1] = RandomSide(r, b);
        ct.SetTcp(st);
        ct.Status = (ConnStatus)r.Next(0, 1 << 11) | ConnStatus.Confirmed;
        ct.Timeout = 1000 + r.Next(0, 500_000);

        // The packet: from side dir, its sequence near that side's end, its ACK near the other side's.
        uint seq = Near(r, dir == 0 ? st.Seen[0].End : st.Seen[1].End), ack = Near(r, dir == 0 ? st.Seen[1].End : st.Seen[0].End);
        if (r.Next(5) == 0)
        {
            // A retransmission of the last packet remembered.
            seq = st.LastSeq;
            ack = st.LastAck;
            st.LastDir = (byte)dir;
        }
        ushort win = (ushort)(r.Next(5) == 0 ? 0 : r.Next(0, 65536));
        if (r.Next(5) == 0) win = st.LastWin;
        PacketBuilder pb = dir == 0 ? PacketBuilder.Ipv4(0x0a000001, 0x0a000002) : PacketBuilder.Ipv4(0x0a000002, 0x0a000001);
        pb = dir == 0 ? pb.Tcp(40000, 80, FlagSets[r.Next(3) == 0 ? r.Next(FlagSets.Length) : r.Next(4)], seq, ack, win)
            : pb.Tcp(80, 40000, FlagSets[r.Next(3) == 0 ? r.Next(FlagSets.Length) : r.Next(4)], seq, ack, win);
        switch (r.Next(4))
        {
            case 0:
                // SACK blocks (the right edges near the ACK).
                {
                    int blocks = r.Next(1, 4);
                    var data = new byte[blocks * 8];
                    for (int i = 0; i < blocks; i++)
                    {
                        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(i * 8), Near(r, ack));
                        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(i * 8 + 4), Near(r, ack));
                    }
                    pb.TcpOption(TcpOptionKind.Nop).TcpOption(TcpOptionKind.Nop).TcpOption(TcpOptionKind.Sack, data);
                    break;
                }
            case 1:
                // A timestamp option alone (tcp_sack's shortcut).
                pb.TcpOption(TcpOptionKind.Nop).TcpOption(TcpOptionKind.Nop).TcpOption(8, new byte[8]);
                break;
        }
        if (r.Next(2) == 0) pb.PayloadLength(r.Next(1, 1400));
        if (r.Next(4) == 0) st.LastEnd = seq;
        ct.SetTcp(st);
        return (ct, pb.BuildPacket(), dir);
    }

    private static ConnEntry Copy(ConnEntry ct)
    {
        var c = new ConnEntry(ct.Original, ct.Reply);
        c.SetTcp(ct.Tcp);
        c.Status = ct.Status;
        c.Timeout = ct.Timeout;
        return c;
    }

    private static string Describe(in TcpConnState s) =>
        $"{s.State} last {s.LastDir}/{s.LastIndex} seq {s.LastSeq} ack {s.LastAck} end {s.LastEnd} win {s.LastWin} ws {s.LastWscale} lf {s.LastFlags} re {s.Retrans} | "
        + $"{s.Seen[0].End} {s.Seen[0].MaxEnd} {s.Seen[0].MaxWin} {s.Seen[0].MaxAck} {s.Seen[0].Scale} {s.Seen[0].Flags} | "
        + $"{s.Seen[1].End} {s.Seen[1].MaxEnd} {s.Seen[1].MaxWin} {s.Seen[1].MaxAck} {s.Seen[1].Scale} {s.Seen[1].Flags}";

    [Theory]
    [InlineData(1, false, 4000)]
    [InlineData(2, false, 4000)]
    [InlineData(3, true, 4000)]
    [InlineData(4, false, 4000)]
    public void The_established_ACK_path_decides_as_the_general_one(int seed, bool liberal, int cases)
    {
        var host = new VirtualHost();
        host.Sysctls["net.netfilter.nf_conntrack_tcp_be_liberal"] = liberal ? "1" : "0";
        if (seed == 4)
        {
            // Timeouts where the retransmission and unacknowledged caps do not apply (ESTABLISHED's below them).
            host.Sysctls["net.netfilter.nf_conntrack_tcp_timeout_established"] = "200";
            host.Sysctls["net.netfilter.nf_conntrack_tcp_max_retrans"] = "0";
        }
        ConntrackSysctls sys = ConntrackSysctls.For(host);
        var r = new Random(seed);
        int fast = 0;
        var outcomes = new int[5];
        for (int i = 0; i < cases; i++)
        {
            var (ct, p, dir) = Case(r);
            ConnEntry general = Copy(ct);
            bool isFastCase = ct.Tcp.State == TcpCtState.Established && TcpTracker.Index(p.TcpFlags) == TcpTracker.AckSet;
            TcpTracker.Outcome a = TcpTracker.Packet(ct, p, dir, host, sys, 5000, out double ta);
            TcpTracker.Outcome b = TcpTracker.PacketGeneral(general, p, dir, host, sys, 5000, out double tb);
            string what = $"case {i} dir {dir} flags {p.TcpFlags} seq {p.SequenceNumber} ack {p.AcknowledgmentNumber} win {p.Window} len {p.PayloadLength}";
            a.ShouldBe(b, what);
            ta.ShouldBe(tb, what);
            ct.Status.ShouldBe(general.Status, what);
            ct.Timeout.ShouldBe(general.Timeout, what);
            Describe(ct.Tcp).ShouldBe(Describe(general.Tcp), what);
            if (isFastCase)
            {
                fast++;
                outcomes[(int)a]++;
            }
        }
        // The cases reach the established ACK path often and through each of its outcomes.
        fast.ShouldBeGreaterThan(cases / 3);
        outcomes[(int)TcpTracker.Outcome.Accept].ShouldBeGreaterThan(20);
        if (liberal) return;
        outcomes[(int)TcpTracker.Outcome.AcceptQuiet].ShouldBeGreaterThan(20);
        outcomes[(int)TcpTracker.Outcome.Invalid].ShouldBeGreaterThan(20);
    }
}
