using System.Globalization;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// A new connection's SYN tracked in one step (<see cref="TcpTracker.NewSyn"/>, <see cref="ConntrackHooks.SynFast"/>)
/// against tcp_new then the general packet step, through the whole pipeline of a NAT gateway: random TCP packets of every
/// flag kind both ways (new SYNs, retransmitted SYNs, SYN/ACKs, ACKs, FINs, RSTs, a SYN reopening a closed connection),
/// time moving past the SYN_SENT timeout now and then. Every packet's fate, state and bytes out, and the conntrack
/// listing (states, timeouts) at the end, must be the same.
/// </summary>
public class NewSynPipelineTests
{
    private sealed class Side
    {
        public Side(bool synFast)
        {
            Nf = new Netfilter(EngineHost.Create(NatByFieldsTests.Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4));
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            Ct.SynFast = synFast;
        }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        public string Run(PacketInput input)
        {
            PacketResult r = Nf.Process(input);
            string outs = string.Join(" ", r.Outputs.Select(o => o.Interface + ":" + Convert.ToHexString(o.Packet.Bytes)));
            return string.Join(",", r.Fate) + " " + r.CtState + " " + outs;
        }

        public string Listing => string.Join("\n", Ct.Table.List(Nf.State.Now));
    }

    private static readonly TcpFlags[] Flags =
    [
        TcpFlags.Syn, TcpFlags.Syn, TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, TcpFlags.Syn | TcpFlags.Ack, TcpFlags.Ack,
        TcpFlags.Ack | TcpFlags.Psh, TcpFlags.Fin | TcpFlags.Ack, TcpFlags.Rst, TcpFlags.Rst | TcpFlags.Ack, TcpFlags.Syn | TcpFlags.Fin,
    ];

    [Theory]
    [InlineData(1, 1500)]
    [InlineData(2, 3000)]
    [InlineData(3, 3000)]
    public void SYNs_in_one_step_give_the_pipeline_of_the_general_steps(int seed, int packets)
    {
        var fast = new Side(synFast: true);
        var general = new Side(synFast: false);
        if (seed == 3)
        {
            foreach (Side s in new[] { fast, general })
            {
                s.Nf.Host.Sysctls["net.netfilter.nf_conntrack_tcp_timeout_syn_sent"] = "400";
                s.Nf.Host.Sysctls["net.netfilter.nf_conntrack_tcp_timeout_max_retrans"] = "90";
                s.Nf.Host.Sysctls["net.netfilter.nf_conntrack_tcp_loose"] = "0";
            }
        }
        var rnd = new Random(seed);
        double now = 1000;
        int synSent = 0;
        for (int i = 0; i < packets; i++)
        {
            now += rnd.Next(30) == 0 ? rnd.Next(60, 500) : rnd.NextDouble();
            TcpFlags f = Flags[rnd.Next(Flags.Length)];
            string client = "203.0.113." + rnd.Next(1, 4).ToString(CultureInfo.InvariantCulture);
            ushort cport = (ushort)(30000 + rnd.Next(8));
            uint seq = rnd.Next(3) == 0 ? 1000u : (uint)rnd.Next();
            uint ack = rnd.Next(2) == 0 ? 0u : (uint)rnd.Next();
            ushort win = (ushort)(rnd.Next(4) == 0 ? 0 : rnd.Next(1, 65536));
            byte[] bytes;
            string iface;
            if (rnd.Next(3) != 0)
            {
                // A client to the DNATed service (8080 → 10.0.1.20:80).
                var b = PacketBuilder.Ipv4(client, "198.51.100.2").Tcp(cport, 8080, f, seq, ack, win);
                if (rnd.Next(3) == 0) b.TcpOption(TcpOptionKind.WindowScale, [(byte)rnd.Next(0, 15)]).TcpOption(TcpOptionKind.SackPermitted);
                bytes = b.Build();
                iface = "eth0";
            }
            else
            {
                // The server's answer (or a packet of its own) back to the client.
                bytes = PacketBuilder.Ipv4("10.0.1.20", client).Tcp(80, cport, f, seq, ack, win).Build();
                iface = "eth1";
            }
            string a = fast.Run(EngineHost.In(iface, bytes, now));
            string g = general.Run(EngineHost.In(iface, (byte[])bytes.Clone(), now));
            a.ShouldBe(g, $"packet {i} {f}");
            if (i % 50 == 0) fast.Listing.ShouldBe(general.Listing, $"packet {i}");
            synSent = Math.Max(synSent, fast.Ct.Table.Entries.Count(e => e.TcpState == TcpCtState.SynSent));
        }
        fast.Listing.ShouldBe(general.Listing);
        synSent.ShouldBeGreaterThan(5);
        fast.Ct.Table.Entries.Count(e => e.TcpState != TcpCtState.SynSent).ShouldBeGreaterThan(0);
    }
}
