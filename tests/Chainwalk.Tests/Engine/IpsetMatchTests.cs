using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Extensions;
using Chainwalk.Host;
using Chainwalk.Net;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.MetaRig;

namespace Chainwalk.Tests.Engine;

/// <summary>-m set and -j SET against the host's sets, as xt_set.c and the ipset kernel types evaluate them.</summary>
public class IpsetMatchTests
{
    /// <summary>Sets made with the ipset command (so the entries have the command's canonical form).</summary>
    private static IpsetStore Sets(params string[] commands)
    {
        string dir = Directory.CreateTempSubdirectory("cw-ipset-eng-").FullName;
        try
        {
            var host = new HostStore(dir);
            foreach (string c in commands)
            {
                var err = new StringWriter();
                int rc = IpsetCompat.Run(("ipset " + c).Split(' ', StringSplitOptions.RemoveEmptyEntries), host, new ToolIo { In = TextReader.Null, Out = TextWriter.Null, Err = err });
                rc.ShouldBe(0, c + ": " + err);
            }
            return IpsetStore.Load(host);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static Netfilter Rig(IpsetStore sets, string chain, string rules)
    {
        var objects = new KernelObjects();
        foreach (IpSet s in sets.Sets) objects.IpSets[s.Name] = s.HasFamily ? s.Family : null;
        KernelObjects.Current = objects;
        VirtualHost h = MakeHost();
        Load(h, string.Join('\n', rules.Split('\n').Select(r => $"-A {chain} {r}")));
        return new Netfilter(h) { Ipsets = sets };
    }

    private static readonly string[] Basic =
    [
        "create ip hash:ip", "add ip 10.0.0.9",
        "create net hash:net", "add net 10.0.0.0/24", "add net 10.0.0.128/25 nomatch",
        "create ipport hash:ip,port", "add ipport 10.0.0.9,tcp:22", "add ipport 10.0.0.9,udp:53", "add ipport 10.0.0.9,icmp:echo-request",
        "create netport hash:net,port", "add netport 10.0.0.0/8,tcp:22",
        "create ipportip hash:ip,port,ip", "add ipportip 10.0.0.9,tcp:22,10.0.0.1",
        "create ipportnet hash:ip,port,net", "add ipportnet 10.0.0.9,tcp:22,10.0.0.0/24",
        "create ports bitmap:port range 1-1024", "add ports 22",
        "create list list:set", "add list ip", "add list ports",
    ];

    [Theory]
    [InlineData("-m set --match-set ip src", "10.0.0.9", 22, true)]
    [InlineData("-m set --match-set ip dst", "10.0.0.9", 22, false)]
    [InlineData("-m set ! --match-set ip src", "10.0.0.8", 22, true)]
    [InlineData("-m set --match-set net src", "10.0.0.9", 22, true)]
    // 10.0.0.200 is in the nomatch /25: the more specific entry wins and says no.
    [InlineData("-m set --match-set net src", "10.0.0.200", 22, false)]
    [InlineData("-m set --match-set net src --return-nomatch", "10.0.0.200", 22, true)]
    [InlineData("-m set --match-set net src --return-nomatch", "10.0.0.9", 22, false)]
    [InlineData("-m set --match-set ipport src,dst", "10.0.0.9", 22, true)]
    [InlineData("-m set --match-set ipport src,src", "10.0.0.9", 22, false)]
    [InlineData("-m set --match-set ipport src,dst", "10.0.0.9", 23, false)]
    // Fewer flags than the type's dimensions: ip_set_test returns 0.
    [InlineData("-m set --match-set ipport src", "10.0.0.9", 22, false)]
    [InlineData("-m set --match-set netport src,dst", "10.200.0.1", 22, true)]
    [InlineData("-m set --match-set ipportip src,dst,dst", "10.0.0.9", 22, true)]
    [InlineData("-m set --match-set ipportip src,dst,src", "10.0.0.9", 22, false)]
    [InlineData("-m set --match-set ipportnet src,dst,dst", "10.0.0.9", 22, true)]
    [InlineData("-m set --match-set ports dst", "10.0.0.5", 22, true)]
    [InlineData("-m set --match-set ports src", "10.0.0.5", 22, false)]
    [InlineData("-m set --match-set list src", "10.0.0.9", 80, true)]
    [InlineData("-m set --match-set list dst", "10.0.0.5", 22, true)]
    [InlineData("-m set --match-set list dst", "10.0.0.5", 80, false)]
    public void Set_types_and_directions(string rule, string src, int dport, bool matched)
    {
        Netfilter nf = Rig(Sets(Basic), "INPUT", rule + " -j DROP");
        Matched(nf.Process(In(Tcp4(src, "10.0.0.1", 40000, (ushort)dport)))).ShouldBe(matched);
    }

    [Fact]
    public void Icmp_type_is_the_port_of_hash_ip_port()
    {
        Netfilter nf = Rig(Sets(Basic), "INPUT", "-m set --match-set ipport src,dst -j DROP");
        Matched(nf.Process(In(Chainwalk.Wire.PacketBuilder.Ipv4("10.0.0.9", "10.0.0.1").IcmpEcho(1, 1).Build()))).ShouldBeTrue();
        Matched(nf.Process(In(Chainwalk.Wire.PacketBuilder.Ipv4("10.0.0.9", "10.0.0.1").IcmpEcho(1, 1, reply: true).Build()))).ShouldBeFalse();
    }

    [Theory]
    [InlineData("2001:db8:1::9", true)]
    [InlineData("2001:db8:1::8", false)]
    public void An_ipv6_set_in_ip6tables(string src, bool matched)
    {
        IpsetStore sets = Sets("create six hash:ip family inet6", "add six 2001:db8:1::9");
        var objects = new KernelObjects();
        objects.IpSets["six"] = IpFamily.V6;
        KernelObjects.Current = objects;
        VirtualHost h = MakeHost();
        Load(h, "-A INPUT -m set --match-set six src -j DROP", IpFamily.V6);
        var nf = new Netfilter(h) { Ipsets = sets };
        byte[] p = Chainwalk.Wire.PacketBuilder.Ipv6(src, "2001:db8:1::1").Tcp(1000, 22).Build();
        Matched(nf.Process(In(p))).ShouldBe(matched);
    }

    [Fact]
    public void Counters_are_updated_then_compared()
    {
        IpsetStore sets = Sets("create c hash:ip counters", "add c 10.0.0.9");
        // The entry is counted before the comparison: the 3rd packet is the first with packets > 2.
        Netfilter nf = Rig(sets, "INPUT", "-m set --match-set c src --packets-gt 2 -j DROP");
        string seen = string.Concat(Enumerable.Range(0, 4).Select(_ => Matched(nf.Process(In(Tcp4()))) ? 'M' : '.'));
        seen.ShouldBe("..MM");
        IpsetMember m = sets.Get("c")!.Members[0];
        (m.Packets, m.Bytes).ShouldBe((4L, 160L));
    }

    [Fact]
    public void No_update_counters_leaves_them()
    {
        IpsetStore sets = Sets("create c hash:ip counters", "add c 10.0.0.9");
        Netfilter nf = Rig(sets, "INPUT", "-m set --match-set c src ! --update-counters -j DROP");
        Matched(nf.Process(In(Tcp4()))).ShouldBeTrue();
        sets.Get("c")!.Members[0].Packets.ShouldBe(0);
    }

    [Theory]
    [InlineData("--bytes-eq 40", true)]
    [InlineData("--bytes-lt 40", false)]
    [InlineData("--packets-eq 1", true)]
    [InlineData("! --packets-eq 1", false)]
    public void Counter_comparisons_on_the_first_packet(string option, bool matched)
    {
        IpsetStore sets = Sets("create c hash:ip counters", "add c 10.0.0.9");
        Matched(Rig(sets, "INPUT", $"-m set --match-set c src {option} -j DROP").Process(In(Tcp4()))).ShouldBe(matched);
    }

    [Fact]
    public void Set_target_adds_and_the_timeout_runs_on_the_host_clock()
    {
        IpsetStore sets = Sets("create seen hash:ip timeout 60");
        Netfilter nf = Rig(sets, "INPUT", "-m set --match-set seen src -j DROP\n-j SET --add-set seen src --timeout 10");
        Matched(nf.Process(In(Tcp4(), at: 100))).ShouldBeFalse();
        Matched(nf.Process(In(Tcp4(), at: 105))).ShouldBeTrue();
        sets.Get("seen")!.Members.Single().Key.ShouldBe("10.0.0.9");
        // Expired at 110: no longer in the set, so it is added again.
        Matched(nf.Process(In(Tcp4(), at: 111))).ShouldBeFalse();
        Matched(nf.Process(In(Tcp4(), at: 112))).ShouldBeTrue();
    }

    [Fact]
    public void Set_target_without_exist_does_not_refresh_the_timeout()
    {
        IpsetStore sets = Sets("create seen hash:ip timeout 10");
        Netfilter nf = Rig(sets, "INPUT", "-j SET --add-set seen src\n-m set --match-set seen src -j DROP");
        Matched(nf.Process(In(Tcp4(), at: 100))).ShouldBeTrue();
        Matched(nf.Process(In(Tcp4(), at: 108))).ShouldBeTrue();
        // Added at 100 with the set's 10 s; the add at 108 failed (already added) and refreshed nothing.
        Matched(nf.Process(In(Tcp4("10.0.0.8"), at: 110.5))).ShouldBeTrue();
        sets.Get("seen")!.Members.Single(m => m.Key == "10.0.0.9").ExpiresAt.ShouldBe(110);
    }

    [Fact]
    public void Set_target_exist_refreshes_the_timeout()
    {
        IpsetStore sets = Sets("create seen hash:ip timeout 10");
        Netfilter nf = Rig(sets, "INPUT", "-j SET --add-set seen src --exist");
        nf.Process(In(Tcp4(), at: 100));
        nf.Process(In(Tcp4(), at: 108));
        sets.Get("seen")!.Members.Single().ExpiresAt.ShouldBe(118);
    }

    [Fact]
    public void Set_target_deletes_and_adds_net_entries_under_the_sets_prefix()
    {
        IpsetStore sets = Sets("create n hash:net", "add n 192.168.0.0/16", "create p hash:ip,port", "add p 10.0.0.9,tcp:22");
        Netfilter nf = Rig(sets, "INPUT", "-j SET --add-set n src\n-j SET --del-set p src,dst");
        nf.Process(In(Tcp4()));
        sets.Get("n")!.Members.Select(m => m.Key).ShouldBe(["192.168.0.0/16", "10.0.0.0/16"]);
        sets.Get("p")!.Members.ShouldBeEmpty();
    }

    [Fact]
    public void Nfacct_counts_into_the_hosts_object_and_always_matches()
    {
        KernelObjects.Current = new KernelObjects();
        KernelObjects.Current.NfacctObjects.Add("web");
        VirtualHost h = MakeHost();
        Load(h, "-A INPUT -m nfacct --nfacct-name web -j DROP");
        var acct = new NfacctStore();
        acct.Objects.Add(new NfacctObject("web") { Packets = 5, Bytes = 500 });
        var nf = new Netfilter(h) { Nfacct = acct };
        Matched(nf.Process(In(Tcp4(payload: 60)))).ShouldBeTrue();
        (acct.Objects[0].Packets, acct.Objects[0].Bytes).ShouldBe((6UL, 600UL));
    }

    [Theory]
    // No traffic: every estimator reads 0 bytes/s and 0 packets/s.
    [InlineData("--rateest e1 --rateest-lt --rateest-bps 10kbit", true)]
    [InlineData("--rateest e1 --rateest-gt --rateest-bps 10kbit", false)]
    // Without --rateest-delta the value given to bps1 is not used: 0 (estimate) < 0 (bps2) is false.
    [InlineData("--rateest e1 --rateest-bps1 10kbit --rateest-lt", false)]
    [InlineData("--rateest e1 --rateest-pps1 0 --rateest-eq", true)]
    [InlineData("--rateest1 e1 --rateest2 e2 --rateest-bps --rateest-eq", true)]
    [InlineData("--rateest1 e1 --rateest2 e2 --rateest-bps ! --rateest-eq", false)]
    [InlineData("--rateest-delta --rateest1 e1 --rateest-bps1 8bit --rateest2 e2 --rateest-bps2 0 --rateest-gt", true)]
    public void Rateest_compares_idle_estimators(string options, bool matched)
    {
        KernelObjects.Current = new KernelObjects();
        KernelObjects.Current.RateEstimators.Add("e1");
        KernelObjects.Current.RateEstimators.Add("e2");
        Matched(With("INPUT", "-m rateest " + options).Process(In(Tcp4()))).ShouldBe(matched);
    }
}
