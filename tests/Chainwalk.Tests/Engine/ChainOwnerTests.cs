using Chainwalk.Net;
using Chainwalk.Rules;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// A chain's owner (its table, whose rule set's generation the chain's changes move: session 11 rulesgen) is held in the
/// chain's extras field (session 11 rulebytes2): the table itself until the extras are made (a listener, the -D/-C index,
/// searches counted, a built-in chain's policy counters, a policy that is not ACCEPT or DROP), then inside them. Whichever
/// is made first, the owner and the extras' values must both hold, and every change must move the owner's generation.
/// </summary>
public class ChainOwnerTests
{
    private sealed class Listener : IChainEdits
    {
        public int Calls;

        public void Inserted(Chain chain, int position) => Calls++;

        public void Replaced(Chain chain, int position) => Calls++;

        public void Deleted(Chain chain, int position) => Calls++;

        public void Cleared(Chain chain) => Calls++;
    }

    public static TheoryData<string, bool> Cases()
    {
        var d = new TheoryData<string, bool>();
        foreach (string extras in (string[])["none", "listener", "listener-cleared", "searches", "counters", "counters-cell", "other-policy"])
        {
            d.Add(extras, true);
            d.Add(extras, false);
        }
        return d;
    }

    private static void Make(Chain c, string extras, Listener listener)
    {
        switch (extras)
        {
            case "listener":
                c.EditListener = listener;
                break;
            case "listener-cleared":
                c.EditListener = listener;
                c.EditListener = null;
                break;
            case "searches":
                c.LinearFinds = 3;
                break;
            case "counters":
                c.Counters = new Counters { Packets = 5, Bytes = 500 };
                break;
            case "counters-cell":
                c.CountersCell.Packets += 7;
                break;
            case "other-policy":
                c.Policy = "QUEUE";
                break;
        }
    }

    private static void Check(Chain c, string extras, Listener listener)
    {
        c.EditListener.ShouldBe(extras == "listener" ? listener : null);
        c.LinearFinds.ShouldBe(extras == "searches" ? 3 : 0);
        c.Counters.Packets.ShouldBe(extras switch { "counters" => 5UL, "counters-cell" => 7UL, _ => 0UL });
        if (extras == "other-policy") c.Policy.ShouldBe("QUEUE");
    }

    /// <summary>A user chain (extras made before or after the table takes it) and a built-in chain (owned from the start).</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void The_owner_and_the_extras_both_hold_whichever_comes_first(string extras, bool before)
    {
        var rules = new Ruleset(IpFamily.V4);
        Table t = rules.GetOrCreate(TableInfo.Find("filter")!);
        var listener = new Listener();
        var user = new Chain("U", builtin: false);
        user.Owner.ShouldBeNull();
        if (before) Make(user, extras, listener);
        t.AddUserChain(user);
        if (!before) Make(user, extras, listener);
        user.Owner.ShouldBeSameAs(t);
        Check(user, extras, listener);
        Chain input = t.Find("INPUT")!;
        Make(input, extras, listener);
        input.Owner.ShouldBeSameAs(t);
        Check(input, extras, listener);

        foreach (Chain c in (Chain[])[user, input])
        {
            long g = rules.Generation;
            c.Rules.Add(new Rule { Family = IpFamily.V4, Target = TargetUse.Jump(Verdicts.Accept, false) });
            rules.Generation.ShouldNotBe(g, $"{c.Name}: a rule added");
            g = rules.Generation;
            c.Rules.Clear();
            rules.Generation.ShouldNotBe(g, $"{c.Name}: cleared");
        }
        Moves(rules, () => input.Policy = "DROP", "INPUT's policy");
        input.Owner.ShouldBeSameAs(t);

        // Made after the owner, the extras keep it; the owner set again (a table's copy) goes into them.
        user.LinearFinds = 1;
        user.Owner.ShouldBeSameAs(t);
        Table copy = t.Clone();
        copy.Find("U")!.Owner.ShouldBeSameAs(copy);
        copy.Find("INPUT")!.Owner.ShouldBeSameAs(copy);
        copy.Find("INPUT")!.Counters.ShouldBe(input.Counters);
        user.Owner = copy;
        user.Owner.ShouldBeSameAs(copy);
        user.LinearFinds.ShouldBe(1);
        Check(input, extras == "other-policy" ? "none" : extras, listener);
    }

    private static void Moves(Ruleset rules, Action edit, string what)
    {
        long g = rules.Generation;
        edit();
        rules.Generation.ShouldNotBe(g, what);
    }
}
