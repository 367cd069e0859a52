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

    /// <summary>The rules in order. Change them through <see cref="RulesetEditor"/>, which keeps <see cref="Finder"/> and the table's <see cref="Table.Checked"/> true.</summary>
    public List<Rule> Rules { get; } = new();

    /// <summary>
    /// Changes made to <see cref="Rules"/> by <see cref="RulesetEditor"/>, counted: a compiled form remembers the count it
    /// is in step with, and walks a chain whose count moved past it linearly.
    /// </summary>
    public int Edits { get; internal set; }

    /// <summary>Told of each change <see cref="RulesetEditor"/> makes to <see cref="Rules"/> (the compiled form that last indexed the chain); null: none.</summary>
    public IChainEdits? EditListener
    {
        get => _extras?.EditListener;
        set { if (value is not null || _extras is not null) Extras.EditListener = value; }
    }

    /// <summary>The index for <c>-D</c>/<c>-C</c> by rule, built on first use on a long chain; null when none.</summary>
    public RuleFinder? Finder
    {
        get => _extras?.Finder;
        set { if (value is not null || _extras is not null) Extras.Finder = value; }
    }

    /// <summary>Searches by rule made without the index (the first builds none: a CLI command searches once).</summary>
    internal int LinearFinds
    {
        get => _extras?.LinearFinds ?? 0;
        set { if (value != 0 || _extras is not null) Extras.LinearFinds = value; }
    }

    /// <summary>What most chains of a large rule set never get (a compiled form's listener, the -D/-C index), made on first use.</summary>
    private ChainExtras? _extras;

    private ChainExtras Extras => _extras ??= new ChainExtras();

    private sealed class ChainExtras
    {
        public IChainEdits? EditListener;
        public RuleFinder? Finder;
        public int LinearFinds;
    }

    public Chain Clone()
    {
        var c = new Chain(Name, IsBuiltin) { Policy = Policy, Counters = Counters };
        foreach (Rule r in Rules) c.Rules.Add(r.Clone());
        return c;
    }
}
