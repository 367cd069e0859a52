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
    public RuleList Rules => new(this);

    /// <summary>The rules: <c>[0, _gapStart)</c>, then free slots, then the rest up to the end of the array (see <see cref="RuleList"/>).</summary>
    private Rule[] _rules = [];
    private int _ruleCount;
    private int _gapStart;

    internal int RuleCount => _ruleCount;

    internal int RuleCapacity => _rules.Length;

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal Rule RuleAt(int index)
    {
        if ((uint)index >= (uint)_ruleCount) ThrowIndex(index);
        Rule[] a = _rules;
        if (index >= _gapStart) index += a.Length - _ruleCount;
        return a[index];
    }

    internal void SetRuleAt(int index, Rule rule)
    {
        if ((uint)index >= (uint)_ruleCount) ThrowIndex(index);
        if (index >= _gapStart) index += _rules.Length - _ruleCount;
        _rules[index] = rule;
    }

    internal void InsertRule(int index, Rule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if ((uint)index > (uint)_ruleCount) ThrowIndex(index);
        if (_ruleCount == _rules.Length) Grow(index);
        else MoveGap(index);
        _rules[_gapStart++] = rule;
        _ruleCount++;
    }

    internal void RemoveRuleAt(int index)
    {
        if ((uint)index >= (uint)_ruleCount) ThrowIndex(index);
        // The gap is moved to just after the rule, which then joins it from below.
        MoveGap(index + 1);
        _rules[--_gapStart] = null!;
        _ruleCount--;
    }

    internal void ClearRules()
    {
        _rules = [];
        _ruleCount = _gapStart = 0;
    }

    internal void SetRuleCapacity(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, _ruleCount);
        if (capacity == _rules.Length) return;
        Rule[] a = capacity == 0 ? [] : new Rule[capacity];
        CopyOut(a);
        _rules = a;
        _gapStart = _ruleCount;
    }

    /// <summary>Moves the free slots so that they start at <paramref name="index"/> (shifting the rules between).</summary>
    private void MoveGap(int index)
    {
        int gap = _rules.Length - _ruleCount;
        if (index == _gapStart) return;
        if (gap == 0)
        {
            _gapStart = index;
            return;
        }
        if (index < _gapStart)
        {
            // Rules [index, gapStart) move up behind the gap.
            Array.Copy(_rules, index, _rules, index + gap, _gapStart - index);
            Array.Clear(_rules, index, Math.Min(gap, _gapStart - index));
        }
        else
        {
            // Rules [gapStart + gap, index + gap) move down in front of the gap.
            Array.Copy(_rules, _gapStart + gap, _rules, _gapStart, index - _gapStart);
            int from = Math.Max(index, _gapStart + gap);
            Array.Clear(_rules, from, index + gap - from);
        }
        _gapStart = index;
    }

    /// <summary>A larger array (twice the size, as a list grows) with the free slots at <paramref name="index"/>.</summary>
    private void Grow(int index)
    {
        // Only called when full: the old array has no gap.
        int capacity = Math.Max(4, _rules.Length * 2);
        var a = new Rule[capacity];
        int tail = _ruleCount - index;
        Array.Copy(_rules, 0, a, 0, index);
        Array.Copy(_rules, index, a, capacity - tail, tail);
        _rules = a;
        _gapStart = index;
    }

    /// <summary>The rules in order into <paramref name="a"/> from its start.</summary>
    private void CopyOut(Rule[] a)
    {
        int gap = _rules.Length - _ruleCount;
        Array.Copy(_rules, 0, a, 0, _gapStart);
        Array.Copy(_rules, _gapStart + gap, a, _gapStart, _ruleCount - _gapStart);
    }

    private static void ThrowIndex(int index) => throw new ArgumentOutOfRangeException(nameof(index), index, "Index was out of range.");

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

    /// <summary>
    /// The hooks whose built-in chain reached this chain when its table was last checked whole; meaningful while the
    /// table's <see cref="Table.Checked"/> is set (a chain added since is reached by nothing: no jump to it was checked).
    /// </summary>
    internal HookMask CheckedReach { get; set; }

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
