using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The arrival record (session 11 synarrive): per hash slot of the index a SYN meets first (kube-proxy's KUBE-SERVICES),
/// what the slot's first rule jumps to (<see cref="CompiledRules.ArrivalJumpOf"/>), so that a single packet's walk can fetch
/// the service's KUBE-SVC-… chain from the slot's position alone, before the receive checks and conntrack. The records
/// are checked against the form; the pipeline with the fetches forced on, across edits that leave the records stale,
/// against the pipeline without the compiled form.
/// </summary>
public class ArrivalJumpTests
{
    /// <summary>
    /// A SYN to a service's cluster IP and port: the record found from its home slot by its tag is that service's
    /// KUBE-SERVICES rule's entry, the KUBE-SVC-… chain's number and where its entries start (for at least 95 % of the
    /// services: a key more than a few slots from its home is not hinted); every record found agrees with the entry it
    /// names; a key with no bucket finds none.
    /// </summary>
    [Theory]
    [InlineData(40)]
    [InlineData(300)]
    public void A_service_s_slot_names_its_rule_and_its_service_chain(int services)
    {
        var (text, svcs, _) = Chainwalk.Bench.KubeProxyRules.Generate(services, seed: 5);
        VirtualHost host = EngineHost.Create(text);
        CompiledRules form = CompiledRules.Build(host.V4);
        Table nat = host.V4.Find("nat")!;
        Chain ks = nat.Find("KUBE-SERVICES")!;
        FlatSpan kss = form.Spans[form.NumberOf(ks)];
        int named = 0;
        foreach (var svc in svcs)
        {
            int rule = -1;
            for (int i = 0; i < kss.Count; i++)
            {
                FlatEntry e = form.Entries[kss.Start + i];
                if (e.Destination == svc.ClusterIp && e.DestinationShift == 0 && e.Protocol == 6 && e.B == (svc.Port | (uint)svc.Port << 16)) rule = i;
            }
            rule.ShouldBeGreaterThanOrEqualTo(0);
            Chain svcChain = nat.Find(ks.Rules[rule].Target!.Name)!;
            svcChain.Name.ShouldStartWith("KUBE-SVC-");
            byte[] syn = PacketBuilder.Ipv4(0xC0A80002u, svc.ClusterIp).Tcp(40000, svc.Port, TcpFlags.Syn).Build();
            int token = form.PrefetchArrival(syn, out uint tag);
            token.ShouldBeGreaterThanOrEqualTo(0);
            if (!form.ArrivalJumpOf(token, tag, out ArrivalJump j)) continue;
            // Whatever the record names, it is what that entry jumps to.
            FlatEntry named0 = form.Entries[j.At];
            j.Jump.ShouldBe(named0.Jump);
            j.JumpStart.ShouldBe(form.Spans[j.Jump].Start);
            form.Spans[j.Jump].Chain.Name.ShouldStartWith("KUBE-SVC-");
            if (j.At != kss.Start + rule) continue;
            j.Jump.ShouldBe(form.NumberOf(svcChain));
            named++;
        }
        named.ShouldBeGreaterThanOrEqualTo(services * 19 / 20, $"{named} of {services}");
        // No record for a token that is no slot.
        form.ArrivalJumpOf(-1, 0x8000_0001u, out _).ShouldBeFalse();
        form.ArrivalJumpOf(int.MaxValue, 0x8000_0001u, out _).ShouldBeFalse();
        // A key with no bucket (no service at that address): no record, or (its home slot taken by others) none with its tag.
        int none = 0;
        for (uint a = 1; a <= 200; a++)
        {
            int token = form.PrefetchArrival(PacketBuilder.Ipv4(0xC0A80002u, 0x0A090000u + a).Tcp(40000, 80, TcpFlags.Syn).Build(), out uint tag);
            if (!form.ArrivalJumpOf(token, tag, out _)) none++;
        }
        none.ShouldBe(200);
    }

    /// <summary>A form without an arrival index has no records: a SYN is not hinted and no token names one.</summary>
    [Fact]
    public void Without_an_arrival_index_there_are_no_records()
    {
        CompiledRules form = CompiledRules.Build(EngineHost.Rules(Chainwalk.Net.IpFamily.V4,
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -i eth0 -j ACCEPT\nCOMMIT\n"));
        form.PrefetchArrival(PacketBuilder.Ipv4("192.168.0.2", "172.30.0.1").Tcp(1234, 80, TcpFlags.Syn).Build()).ShouldBe(-1);
        for (int t = -1; t < 4; t++) form.ArrivalJumpOf(t, 0x8000_0001u, out _).ShouldBeFalse();
    }

    /// <summary>
    /// New connections to kube services packet by packet with the walk's fetches forced on (a small set would not fetch),
    /// so that every SYN's service chain is fetched from its slot's record, and between rounds edits that leave the records
    /// of the form stale (KUBE-SERVICES' rules inserted, deleted and flushed, service chains outgrowing their room or
    /// flushed, a chain deleted): every result, the counters and the conntrack table as without the compiled form.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Syns_with_stale_records_are_processed_as_without_the_compiled_form(int seed)
    {
        string rules = BurstTests.KubeRules(60);
        int was = Netfilter.PrefetchFromEntries;
        Netfilter.PrefetchFromEntries = 0;
        try
        {
            var flat = Make(rules, compiled: true);
            var linear = Make(rules, compiled: false);
            var parser = new CommandLineParser(Chainwalk.Net.IpFamily.V4, "iptables");
            void Command(string line)
            {
                foreach (VirtualHost h in new[] { flat.Host, linear.Host })
                    new CommandExecutor(h.V4).Execute(parser.Parse(["iptables", "-t", "nat", .. line.Split(' ')]));
            }
            var rnd = new Random(seed);
            double at = 1000;
            int k = 0;
            for (int round = 0; round < 6; round++)
            {
                for (int n = 0; n < 80; n++, k++)
                {
                    int s = rnd.Next(64);
                    bool inside = rnd.Next(5) == 0;
                    string src = inside ? $"10.0.1.{10 + rnd.Next(200)}" : $"203.0.113.{1 + rnd.Next(250)}";
                    byte[] syn = PacketBuilder.Ipv4(src, $"172.30.{s / 200}.{s % 200 + 1}").Tcp((ushort)(10000 + k), (ushort)(80 + s % 3), TcpFlags.Syn, seq: 1000).Build();
                    at += 0.001;
                    string iface = inside ? "eth1" : "eth0";
                    string a = Describe(flat.Nf.Process(EngineHost.In(iface, (byte[])syn.Clone(), at)));
                    string l = Describe(linear.Nf.Process(EngineHost.In(iface, (byte[])syn.Clone(), at)));
                    a.ShouldBe(l, $"round {round}, packet {n}");
                }
                int svc = rnd.Next(60);
                switch (round)
                {
                    case 0:
                        Command($"-I KUBE-SERVICES 1 -d 172.30.0.{svc + 1}/32 -p tcp -j KUBE-SVC-{(svc + 1) % 60}");
                        break;
                    case 1:
                        for (int m = 0; m < 6; m++) Command($"-A KUBE-SVC-{svc} -s 10.{m}.0.0/16 -j KUBE-SEP-{svc}-0");
                        Command("-D KUBE-SERVICES 1");
                        break;
                    case 2:
                        Command($"-F KUBE-SVC-{svc}");
                        Command($"-I KUBE-SVC-{svc} 1 -j KUBE-SEP-{svc}-0");
                        break;
                    case 3:
                        Command($"-D KUBE-SERVICES {1 + svc % 50}");
                        break;
                    case 4:
                        Command("-F KUBE-SERVICES");
                        for (int m = 0; m < 60; m += 2) Command($"-A KUBE-SERVICES -d 172.30.0.{m + 1}/32 -p tcp -m tcp --dport {80 + m % 3} -j KUBE-SVC-{m}");
                        break;
                }
            }
            EngineHost.Counters(flat.Host).ShouldBe(EngineHost.Counters(linear.Host));
            ConntrackStore.Format(flat.Ct.Table, at).ShouldBe(ConntrackStore.Format(linear.Ct.Table, at));
            flat.Ct.Table.Entries.Count(e => e.Reply.Source != e.Original.Destination).ShouldBeGreaterThan(200);
        }
        finally
        {
            Netfilter.PrefetchFromEntries = was;
        }
    }

    private static (VirtualHost Host, Netfilter Nf, ConntrackHooks Ct) Make(string rules, bool compiled)
    {
        VirtualHost host = EngineHost.Create(rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4);
        var nf = new Netfilter(host);
        ConntrackHooks ct = ConntrackLoader.Enable(nf) ?? throw new InvalidOperationException("conntrack not loaded");
        if (compiled) nf.Compiled = CompiledRules.Build(host.V4);
        return (host, nf, ct);
    }

    private static string Describe(PacketResult r)
    {
        string conn = r.Connection is ConnEntry c ? c.Original + "/" + c.Reply : "";
        return string.Join(',', r.Fate) + " ct=" + r.CtState + " drop=" + r.DropReason + " err=" + r.Error + " conn=" + conn
            + string.Concat(r.Outputs.Select(o => " out " + o.Interface + " " + Convert.ToHexString(o.Bytes)));
    }
}
