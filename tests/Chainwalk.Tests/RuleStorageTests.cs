using Chainwalk.Extensions;
using Chainwalk.Extensions.Targets;
using Chainwalk.Net;
using Chainwalk.Rules;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// How a chain holds its rules and how rule parts are laid out small: the chain's rules are a gap buffer behind a
/// list's interface (every sequence of edits reads back as a <see cref="List{T}"/> given the same edits does, and the
/// free slots hold no rule); a NAT range keeps 32-bit addresses in 32-bit fields and wider ones aside, reading back
/// exactly what was set; extension data keeps its option bits in 32 bits (every extension's option ids fit); a
/// target's data and a chain jump's memo share one field without one ever hiding the other.
/// </summary>
public class RuleStorageTests
{
    private static Rule NewRule(int i) => new() { Family = IpFamily.V4, Protocol = (ushort)(i % 250), Target = TargetUse.Jump(Verdicts.Accept, false) };

    /// <summary>Edit scripts: I = insert at, D = remove at, S = set at, A = append, T = trim, C = clear, K = set the capacity; positions as given.</summary>
    public static TheoryData<string, string> Scripts() => new()
    {
        { "appends", "A A A A A A A A A" },
        { "inserts at the front", "I0 I0 I0 I0 I0 I0 I0" },
        { "inserts at one middle position", "A A A A A A A A I4 I4 I4 I5 I4" },
        { "insert then remove at the middle", "A A A A A A A A A A I5 D6 I5 D6 I5 D6" },
        { "edits that walk the gap both ways", "A A A A A A A A I1 I7 D2 I9 D0 S3 I4 D8 I0 D1" },
        { "insert into a full array at the middle", "A A A A T I2 I2 D3 A" },
        { "trim with the gap in the middle", "A A A A A A I3 D1 T I2 D5" },
        { "remove everything from both ends", "A A A A A A D0 D4 D0 D2 D0 D0" },
        { "clear and start again", "A A I1 D0 C A I0 I1" },
        { "set on both sides of the gap", "A A A A A A I3 S0 S2 S3 S4 S6" },
        // A chain of at most two rules holds them without an array; a third rule or a larger capacity makes one.
        { "two rules held by the chain, edited in place", "A I0 S0 S1 D1 I1 D0 I0 S1 D0 D0 A" },
        { "a third rule moves two into an array", "A A A D0 I2 T D1 T A I0 I1" },
        { "trim back to the chain from a gapped array", "A A A A A I2 D0 D0 D0 T S0 S1 A A" },
        { "capacity set above and back to the count", "A K5 A A K3 D2 K2 D0 K1 D0 K0 A" },
        { "clear while held by the chain", "A A C A I0 C I0" },
    };

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Chain_rules_read_back_as_a_list_given_the_same_edits(string name, string script)
    {
        _ = name;
        var chain = new Chain("X", builtin: false);
        var reference = new List<Rule>();
        int made = 0;
        foreach (string step in script.Split(' '))
        {
            int at = step.Length > 1 ? int.Parse(step[1..], System.Globalization.CultureInfo.InvariantCulture) : 0;
            RuleList rules = chain.Rules;
            switch (step[0])
            {
                case 'A': { Rule r = NewRule(made++); rules.Add(r); reference.Add(r); break; }
                case 'I': { Rule r = NewRule(made++); rules.Insert(at, r); reference.Insert(at, r); break; }
                case 'D': rules.RemoveAt(at); reference.RemoveAt(at); break;
                case 'S': { Rule r = NewRule(made++); rules[at] = r; reference[at] = r; break; }
                case 'T': rules.TrimExcess(); rules.Capacity.ShouldBe(reference.Count); break;
                case 'K': rules.Capacity = at; rules.Capacity.ShouldBe(at); break;
                case 'C': rules.Clear(); reference.Clear(); break;
            }
            AssertSame(chain, reference, step);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Random_edits_of_a_long_chain_read_back_as_a_list(int seed)
    {
        var chain = new Chain("X", builtin: false);
        var reference = new List<Rule>();
        var rnd = new Random(seed);
        for (int step = 0; step < 3000; step++)
        {
            RuleList rules = chain.Rules;
            int op = rnd.Next(10);
            if (op < 5 || reference.Count == 0)
            {
                // Inserts near the last edit more often than not, as a script editing one place does.
                int at = rnd.Next(reference.Count + 1);
                Rule r = NewRule(step);
                rules.Insert(at, r);
                reference.Insert(at, r);
            }
            else if (op < 8)
            {
                int at = rnd.Next(reference.Count);
                rules.RemoveAt(at);
                reference.RemoveAt(at);
            }
            else if (op < 9)
            {
                int at = rnd.Next(reference.Count);
                Rule r = NewRule(step);
                rules[at] = r;
                reference[at] = r;
            }
            else
            {
                rules.Add(NewRule(step));
                reference.Add(rules[^1]);
            }
            if (step % 97 == 0) rules.TrimExcess();
            if (step % 50 == 0) AssertSame(chain, reference, "step " + step);
        }
        AssertSame(chain, reference, "end");
    }

    [Theory]
    [InlineData(0, 1500, 1400)]
    [InlineData(7, 1500, 1490)]
    [InlineData(700, 2000, 1200)]
    public void Many_edits_at_one_place_read_back_as_a_list(int at, int inserts, int removals)
    {
        // More edits at one place than the gap has slots: the gap is opened again, widened by removals and closed.
        var chain = new Chain("X", builtin: false);
        var reference = new List<Rule>();
        RuleList rules = chain.Rules;
        for (int i = 0; i < 1000; i++)
        {
            Rule r = NewRule(i);
            rules.Add(r);
            reference.Add(r);
        }
        for (int i = 0; i < inserts; i++)
        {
            Rule r = NewRule(i);
            rules.Insert(at, r);
            reference.Insert(at, r);
            if (i % 211 == 0) AssertSame(chain, reference, "insert " + i);
        }
        for (int i = 0; i < removals; i++)
        {
            rules.RemoveAt(at);
            reference.RemoveAt(at);
            if (i % 211 == 0) AssertSame(chain, reference, "removal " + i);
        }
        rules.Add(NewRule(-1));
        reference.Add(rules[^1]);
        AssertSame(chain, reference, "end");
    }

    [Fact]
    public void Positions_outside_the_chain_throw_as_a_lists_do()
    {
        var chain = new Chain("X", builtin: false);
        RuleList rules = chain.Rules;
        rules.Add(NewRule(0));
        rules.Add(NewRule(1));
        Should.Throw<ArgumentOutOfRangeException>(() => _ = chain.Rules[2]);
        Should.Throw<ArgumentOutOfRangeException>(() => _ = chain.Rules[-1]);
        Should.Throw<ArgumentOutOfRangeException>(() => chain.Rules.Insert(3, NewRule(2)));
        Should.Throw<ArgumentOutOfRangeException>(() => chain.Rules.RemoveAt(2));
        chain.Rules.Count.ShouldBe(2);
    }

    [Fact]
    public void A_cloned_chain_has_its_own_rules_in_the_same_order()
    {
        var chain = new Chain("X", builtin: false);
        RuleList rules = chain.Rules;
        for (int i = 0; i < 10; i++) rules.Add(NewRule(i));
        rules.Insert(3, NewRule(99));
        rules.RemoveAt(7);
        Chain copy = chain.Clone();
        copy.Rules.Select(r => r.Protocol).ShouldBe(chain.Rules.Select(r => r.Protocol));
        for (int i = 0; i < chain.Rules.Count; i++) ReferenceEquals(copy.Rules[i], chain.Rules[i]).ShouldBeFalse();
    }

    private static void AssertSame(Chain chain, List<Rule> reference, string where)
    {
        RuleList rules = chain.Rules;
        rules.Count.ShouldBe(reference.Count, where);
        for (int i = 0; i < reference.Count; i++) ReferenceEquals(rules[i], reference[i]).ShouldBeTrue($"{where}: rule {i}");
        int n = 0;
        foreach (Rule r in rules) ReferenceEquals(r, reference[n++]).ShouldBeTrue($"{where}: enumerated rule {n - 1}");
        n.ShouldBe(reference.Count, where);
        rules.ToArray().ShouldBe(reference.ToArray(), where);
        // Free slots hold no rule (a removed rule must not stay reachable from the chain).
        chain.HeldRules().ShouldBe(reference.Count, where);
    }

    /// <summary>Address ranges a NAT target may hold: both in 32 bits (IPv4, IPv6 near ::), both wide, or one of each.</summary>
    public static TheoryData<string, string, string> Ranges() => new()
    {
        { "v4 host", "10.0.0.1", "10.0.0.1" },
        { "v4 all", "0.0.0.0", "255.255.255.255" },
        { "v6 near ::", "::1", "::ffff" },
        { "v6 wide", "2001:db8::1", "2001:db8::ff" },
        { "small min, wide max", "::1", "2001:db8::1" },
        { "v6 all", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
    };

    [Theory]
    [MemberData(nameof(Ranges))]
    public void Nat_range_addresses_read_back_what_was_set(string name, string min, string max)
    {
        _ = name;
        UInt128 lo = Address(min), hi = Address(max);
        bool v6 = min.Contains(':', StringComparison.Ordinal);
        NatRangeData d = NatRangeData.For(v6 ? IpFamily.V6 : IpFamily.V4);
        d.Flags = NatRangeFlags.MapIps | NatRangeFlags.ProtoSpecified;
        (d.MinPort, d.MaxPort, d.BasePort) = ((ushort)80, (ushort)90, (ushort)7);
        d.MinAddress = lo;
        d.MaxAddress = hi;
        (d.MinAddress, d.MaxAddress).ShouldBe((lo, hi));
        (d.Flags, d.MinPort, d.MaxPort, d.BasePort).ShouldBe((NatRangeFlags.MapIps | NatRangeFlags.ProtoSpecified, (ushort)80, (ushort)90, (ushort)7));
        // A copy is independent of the original whichever way its addresses are held.
        var copy = (NatRangeData)d.Clone();
        copy.MaxAddress = lo;
        copy.MinAddress = hi;
        (d.MinAddress, d.MaxAddress).ShouldBe((lo, hi));
        (copy.MinAddress, copy.MaxAddress).ShouldBe((hi, lo));
        // Back to 32-bit values after wide ones.
        copy.MinAddress = 1;
        copy.MaxAddress = 2;
        (copy.MinAddress, copy.MaxAddress).ShouldBe(((UInt128)1, (UInt128)2));
    }

    /// <summary>The IPv4 form (40 bytes) refuses a range wider than 32 bits and keeps what it held; an IPv6 rule's NAT target gets the wide form.</summary>
    [Theory]
    [InlineData("DNAT", "--to-destination", "2001:db8::1-2001:db8::ff", "--to-destination 2001:db8::1-2001:db8::ff")]
    [InlineData("DNAT", "--to-destination", "[2001:db8::1]:80", "--to-destination [2001:db8::1]:80")]
    [InlineData("SNAT", "--to-source", "::1-::ffff", "--to-source ::1-::ffff")]
    public void An_ipv6_nat_range_is_held_wide_and_the_ipv4_form_refuses_one(string target, string option, string range, string saved)
    {
        var narrow = new NatRangeData { MinAddress = 5, MaxAddress = 6 };
        Should.Throw<InvalidOperationException>(() => narrow.MaxAddress = Address("2001:db8::1"));
        (narrow.MinAddress, narrow.MaxAddress).ShouldBe(((UInt128)5, (UInt128)6));

        var rs = new Ruleset(IpFamily.V6);
        string chain = target == "SNAT" ? "POSTROUTING" : "PREROUTING";
        new Syntax.CommandExecutor(rs).Execute(new Syntax.CommandLineParser(IpFamily.V6, "ip6tables").Parse(["ip6tables", "-t", "nat", "-A", chain, "-p", "tcp", "-j", target, option, range]));
        Rule r = rs.Find("nat")!.Find(chain)!.Rules[0];
        r.Target!.Data.ShouldBeOfType<WideNatRangeData>();
        Syntax.SaveWriter.Write(rs, counters: false, onlyTable: "nat").ShouldContain($"-A {chain} -p tcp -j {target} {saved}\n");
        var copy = (NatRangeData)r.Target.Data!.Clone();
        copy.MinAddress = 1;
        copy.MaxAddress = 1;
        Syntax.SaveWriter.Write(rs, counters: false, onlyTable: "nat").ShouldContain($"-A {chain} -p tcp -j {target} {saved}\n");
    }

    private static UInt128 Address(string text) =>
        IpNet.TryParseStrict(text, text.Contains(':', StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4, out UInt128 a) ? a : throw new FormatException(text);

    [Fact]
    public void Every_extensions_option_ids_fit_the_given_bits()
    {
        var wide = ExtensionRegistry.All.SelectMany(e => e.Options.Where(o => o.Id > ExtensionData.MaxOptionId).Select(o => $"{e.Name} --{o.Name} ({o.Id})")).ToList();
        wide.ShouldBeEmpty();
        ExtensionRegistry.All.Count.ShouldBeGreaterThan(50);
    }

    [Fact]
    public void A_jump_memo_never_takes_the_place_of_target_data()
    {
        var data = new NatRangeData();
        var dnat = new TargetUse { Name = "DNAT", Extension = ExtensionRegistry.FindTarget("DNAT", IpFamily.V4), Data = data };
        dnat.ResolvedJump = TargetUse.JumpMemo.Of(new object(), null, "DNAT");
        dnat.Data.ShouldBeSameAs(data);
        dnat.ResolvedJump.ShouldBeNull();

        var jump = TargetUse.Jump("KUBE-SVC-X", isGoto: false);
        var chain = new Chain("KUBE-SVC-X", builtin: false);
        var memo = TargetUse.JumpMemo.Of(new object(), chain, jump.Name);
        jump.ResolvedJump = memo;
        jump.ResolvedJump.ShouldBeSameAs(memo);
        jump.Data.ShouldBeNull();
    }
}
