using Chainwalk.Net;

namespace Chainwalk.Rules;

/// <summary>
/// A table of one family: its built-in chains in hook order, then user chains in strcmp order (the order
/// iptables-nft prints them in).
/// </summary>
public sealed class Table
{
    private readonly List<Chain> _builtins = new();

    /// <summary>User chains by name (a kube-proxy table has tens of thousands: found without a tree walk per rule line).</summary>
    private readonly ChainMap _user = new();

    /// <summary>The user chains in strcmp order, made when first enumerated after a change.</summary>
    private List<Chain>? _sorted;

    private List<Chain> SortedUser
    {
        get
        {
            List<Chain>? sorted = _sorted;
            if (sorted is not null) return sorted;
            sorted = _user.ToList();
            sorted.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
            _sorted = sorted;
            return sorted;
        }
    }

    /// <summary>Drops the spare slots of the chain map (a checked table is mostly kept as it is).</summary>
    internal void TrimExcess() => _user.TrimExcess();

    public Table(TableInfo info, IpFamily family)
    {
        Info = info;
        Family = family;
        foreach (Hook h in info.Hooks) _builtins.Add(new Chain(h.ChainName(), builtin: true) { Owner = this });
    }

    /// <summary>
    /// The generation of the rule set holding this table (<see cref="Ruleset"/> sets it when it takes the table in), moved
    /// by every change of the table and its chains that can change a walk's path; null while no rule set holds it.
    /// </summary>
    internal RulesGeneration? Generation { get; set; }

    /// <summary>Something a walk's path may depend on changed in this table (its rule set's generation moves).</summary>
    internal void Changed() => Generation?.Changed();

    public TableInfo Info { get; }

    /// <summary>What the last whole check of the table established (<see cref="RulesetEditor"/>); null when unknown.</summary>
    public TableCheckState? Checked { get; set; }

    public IpFamily Family { get; }

    public string Name => Info.Name;

    /// <summary>All chains: built-ins in hook order, then user chains sorted by name.</summary>
    public IEnumerable<Chain> Chains => _builtins.Concat(SortedUser);

    public IEnumerable<Chain> BuiltinChains => _builtins;

    public IEnumerable<Chain> UserChains => SortedUser;

    public int UserChainCount => _user.Count;

    public Chain? Find(string name)
    {
        foreach (Chain c in _builtins)
        {
            if (c.Name == name) return c;
        }
        return _user.Find(name);
    }

    public Chain AddUserChain(string name)
    {
        var c = new Chain(name, builtin: false);
        AddUserChain(c);
        return c;
    }

    /// <summary>Adds a user chain; it belongs to this table from now on (its changes move this table's rule set's generation).</summary>
    public void AddUserChain(Chain chain)
    {
        _user.Add(chain);
        chain.Owner = this;
        _sorted = null;
        Changed();
    }

    public bool RemoveUserChain(string name)
    {
        if (_user.Remove(name) is null) return false;
        _sorted = null;
        Changed();
        return true;
    }

    /// <summary>
    /// Changes to this table's rules (every <see cref="Chain.Edits"/> step <see cref="RulesetEditor"/> makes) and chain
    /// renames, counted: a compiled form built at this count trusts every chain it compiled without checking each one.
    /// </summary>
    public int RuleEdits { get; internal set; }

    public void RenameUserChain(string oldName, string newName)
    {
        RuleEdits++;
        Chain c = _user.Remove(oldName) ?? throw new KeyNotFoundException($"The given key '{oldName}' was not present in the dictionary.");
        c.Name = newName;
        _user.Add(c);
        _sorted = null;
    }

    /// <summary>Number of rules in this table that jump or go to <paramref name="chain"/>.</summary>
    public int References(string chain)
    {
        int n = 0;
        foreach (Chain c in Chains)
        {
            foreach (Rule r in c.Rules)
            {
                if (r.Target is { IsChainJump: true } t && t.Name == chain) n++;
            }
        }
        return n;
    }

    public int RuleCount => Chains.Sum(c => c.Rules.Count);

    public Table Clone()
    {
        var t = new Table(Info, Family);
        t._builtins.Clear();
        foreach (Chain c in _builtins)
        {
            Chain copy = c.Clone();
            copy.Owner = t;
            t._builtins.Add(copy);
        }
        foreach (Chain c in SortedUser)
        {
            Chain copy = c.Clone();
            copy.Owner = t;
            t._user.Add(copy);
        }
        return t;
    }
}
