namespace Chainwalk.Rules;

/// <summary>A chain: built-in (with a policy and policy counters) or user-defined.</summary>
public sealed class Chain
{
    public Chain(string name, bool builtin)
    {
        Name = name;
        IsBuiltin = builtin;
        Policy = builtin ? Verdicts.Accept : null;
    }

    public string Name { get; set; }

    public bool IsBuiltin { get; }

    /// <summary>ACCEPT or DROP for a built-in chain; null for a user chain.</summary>
    public string? Policy { get; set; }

    /// <summary>The policy's counters (built-in chains); kept for user chains as iptables-save -c shows [0:0].</summary>
    public Counters Counters;

    public List<Rule> Rules { get; } = new();

    public Chain Clone()
    {
        var c = new Chain(Name, IsBuiltin) { Policy = Policy, Counters = Counters };
        foreach (Rule r in Rules) c.Rules.Add(r.Clone());
        return c;
    }
}
